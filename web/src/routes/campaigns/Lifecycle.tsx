import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router";
import { fieldName, toProblem } from "../../api/problem";
import { useSession } from "../../auth/useSession";
import { campaignKeys, transition, type CampaignRead, type Transition } from "./api";

/** The campaign's life-cycle buttons the role may use, and the readiness gaps of a refused launch. */
export function Lifecycle({ campaign }: { campaign: CampaignRead }) {
  const session = useSession();
  const queryClient = useQueryClient();
  const role = session?.role ?? "viewer";
  const admin = role === "admin" || role === "owner";
  const member = admin || role === "member";
  const act = useMutation({
    mutationFn: (action: Transition) => transition(campaign.id, action),
    onSuccess: async (updated) => {
      queryClient.setQueryData(campaignKeys.campaign(campaign.id), updated);
      await queryClient.invalidateQueries({ queryKey: campaignKeys.all });
    },
  });
  const problem = act.error ? toProblem(act.error) : null;
  return (
    <section aria-labelledby="lifecycle-title">
      <h2 id="lifecycle-title">Status: {campaign.status}</h2>
      <div className="actions">
        {admin && campaign.status === "draft" ? (
          <button type="button" onClick={() => { act.mutate("launch"); }} disabled={act.isPending}>
            Launch campaign
          </button>
        ) : null}
        {member && campaign.status === "active" ? (
          <button type="button" onClick={() => { act.mutate("pause"); }} disabled={act.isPending}>
            Pause campaign
          </button>
        ) : null}
        {admin && campaign.status === "paused" ? (
          <button type="button" onClick={() => { act.mutate("resume"); }} disabled={act.isPending}>
            Resume campaign
          </button>
        ) : null}
        {campaign.status !== "draft" ? <Link to={`/campaigns/${campaign.id}/live`}>Live view</Link> : null}
      </div>
      {!admin && campaign.status === "draft" ? (
        <p className="field__hint">An admin or owner launches the campaign.</p>
      ) : null}
      {problem ? (
        <div className="form-error" role="alert" aria-labelledby="launch-problem">
          <p id="launch-problem" className="form-error__detail">
            {problem.title}
          </p>
          {problem.errors?.length ? (
            <ul aria-label="What the launch still needs">
              {problem.errors.map((e) => (
                <li key={`${fieldName(e)}:${e.message}`}>
                  <strong>{fieldName(e)}</strong>: {e.message}
                  {fieldName(e).startsWith("brand.") ? (
                    <>
                      {" "}
                      (<Link to={`/?brand=${campaign.brand_id}`}>brand checklist</Link>)
                    </>
                  ) : null}
                </li>
              ))}
            </ul>
          ) : (
            <p>{problem.detail}</p>
          )}
        </div>
      ) : null}
    </section>
  );
}
