import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link, useParams } from "react-router";
import { formErrors } from "../../api/problem";
import { getBrand, keys } from "../../api/queries";
import { useSession } from "../../auth/useSession";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import {
  campaignKeys,
  enroll,
  getCampaign,
  listLeadChoices,
  listSteps,
  previewSchedule,
  updateCampaign,
  type CampaignRead,
  type LeadFilter,
  type StopRules,
} from "./api";
import { SendWindowFields, windowOf, type WindowForm } from "./SendWindow";
import { Lifecycle } from "./Lifecycle";
import { StepEditor } from "./StepEditor";
import "./campaigns.css";

const STOP_RULES: { name: keyof StopRules; label: string }[] = [
  { name: "on_reply", label: "Stop when the lead replies" },
  { name: "on_click", label: "Stop when the lead clicks a link" },
  { name: "on_unsubscribe", label: "Stop when the lead unsubscribes" },
  { name: "on_bounce", label: "Stop when a message bounces" },
];

/** The send window and stop rules (editable while the campaign may change them). */
function Settings({ campaign, readOnly }: { campaign: CampaignRead; readOnly: boolean }) {
  const queryClient = useQueryClient();
  const [sendWindow, setSendWindow] = useState<WindowForm>(() => windowOf(campaign.send_window));
  const [rules, setRules] = useState<Record<string, boolean>>(() => ({ ...campaign.stop_rules }) as Record<string, boolean>);
  const [saved, setSaved] = useState(false);
  const save = useMutation({
    mutationFn: () => updateCampaign(campaign.id, { send_window: sendWindow, stop_rules: rules as StopRules }),
    onSuccess: (updated) => {
      setSaved(true);
      queryClient.setQueryData(campaignKeys.campaign(campaign.id), updated);
    },
  });
  const errors = formErrors(save.error, ["send_window", "send_window.start", "send_window.end", "send_window.weekdays", "stop_rules"]);
  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setSaved(false);
    save.mutate();
  }
  return (
    <form onSubmit={submit} noValidate aria-label="Send window and stop rules">
      <h2>Send window and stop rules</h2>
      <FormError errors={errors} />
      <fieldset className="plain" disabled={readOnly}>
        <SendWindowFields value={sendWindow} onChange={setSendWindow} errors={errors.fields} />
        <fieldset>
          <legend>Stop rules</legend>
          <div className="checks">
            {STOP_RULES.map(({ name, label }) => (
              <label key={name}>
                <input
                  type="checkbox"
                  checked={Boolean(rules[name])}
                  onChange={(e) => { setRules({ ...rules, [name]: e.target.checked }); }}
                />
                {label}
              </label>
            ))}
          </div>
        </fieldset>
      </fieldset>
      {readOnly ? null : (
        <button type="submit" disabled={save.isPending}>
          Save settings
        </button>
      )}
      <p role="status" aria-live="polite">
        {saved ? "Settings saved." : null}
      </p>
    </form>
  );
}

/** When each step would go out for a chosen lead. */
function Schedule({ campaignId }: { campaignId: string }) {
  const leads = useQuery({ queryKey: campaignKeys.leads, queryFn: listLeadChoices });
  const [leadId, setLeadId] = useState("");
  const [asked, setAsked] = useState<string | null>(null);
  const schedule = useQuery({
    queryKey: campaignKeys.schedule(campaignId, asked ?? ""),
    queryFn: () => previewSchedule(campaignId, asked ?? ""),
    enabled: asked !== null,
  });
  const name = (l: { first_name?: string | null; last_name?: string | null; email?: string | null; id: string }) =>
    [l.first_name, l.last_name].filter(Boolean).join(" ") || l.email || l.id;
  return (
    <section aria-labelledby="schedule-title">
      <h2 id="schedule-title">Schedule preview</h2>
      <form
        noValidate
        aria-label="Preview a lead's schedule"
        onSubmit={(e) => {
          e.preventDefault();
          setAsked(leadId);
          void schedule.refetch();
        }}
      >
        <SelectField label="Lead" name="lead" value={leadId} onChange={(e) => { setLeadId(e.target.value); }}>
          <option value="">No lead (the campaign's time zone)</option>
          {(leads.data?.items ?? []).map((lead) => (
            <option key={lead.id} value={lead.id}>
              {name(lead)}
            </option>
          ))}
        </SelectField>
        <button type="submit">Preview schedule</button>
      </form>
      {asked === null ? null : (
        <ListState
          label="the schedule"
          isPending={schedule.isPending}
          error={schedule.error}
          items={schedule.data?.steps}
          empty={<p>No steps yet: add one to see when it goes out.</p>}
        >
          {(steps) => (
            <div className="table-wrap">
              <table aria-label="Schedule">
                <caption>
                  In {schedule.data?.timezone}, starting {schedule.data?.starts_at}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Step</th>
                    <th scope="col">Channel</th>
                    <th scope="col">Local time</th>
                    <th scope="col">Day</th>
                  </tr>
                </thead>
                <tbody>
                  {steps.map((s) => (
                    <tr key={s.step_id}>
                      <td>{s.position}</td>
                      <td>{s.channel}</td>
                      <td>{s.local_time}</td>
                      <td>{s.weekday}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </ListState>
      )}
    </section>
  );
}

const FILTER_FIELDS = ["company", "title_contains", "email_domain", "timezone"] as const;
const FILTER_LABELS: Record<(typeof FILTER_FIELDS)[number], string> = {
  company: "Company (exact)",
  title_contains: "Title contains",
  email_domain: "Email domain",
  timezone: "Lead time zone",
};

/** Enroll the leads a filter picks (an empty filter: every lead). */
function Enroll({ campaignId }: { campaignId: string }) {
  const queryClient = useQueryClient();
  const [filter, setFilter] = useState<Record<string, string>>({});
  const [hasEmail, setHasEmail] = useState(false);
  const run = useMutation({
    mutationFn: () => {
      const body: LeadFilter = {};
      for (const f of FILTER_FIELDS) if (filter[f]?.trim()) body[f] = filter[f].trim();
      if (hasEmail) body.has_email = true;
      return enroll(campaignId, body);
    },
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: campaignKeys.enrollments(campaignId) });
    },
  });
  const errors = formErrors(run.error, FILTER_FIELDS.map((f) => `filter.${f}`));
  const skipped = Object.entries(run.data?.skipped ?? {}).filter(([, n]) => n > 0);
  return (
    <section aria-labelledby="enroll-title">
      <h2 id="enroll-title">Enroll leads</h2>
      <form
        noValidate
        aria-label="Enroll leads by filter"
        onSubmit={(e) => {
          e.preventDefault();
          run.mutate();
        }}
      >
        <FormError errors={errors} />
        <p className="field__hint">Every condition given must hold; leave them all empty to enroll every lead.</p>
        {FILTER_FIELDS.map((f) => (
          <Field
            key={f}
            label={FILTER_LABELS[f]}
            name={f}
            value={filter[f] ?? ""}
            onChange={(e) => { setFilter({ ...filter, [f]: e.target.value }); }}
            error={errors.fields[`filter.${f}`]}
          />
        ))}
        <div className="checks">
          <label>
            <input type="checkbox" checked={hasEmail} onChange={(e) => { setHasEmail(e.target.checked); }} />
            Only leads with an email address
          </label>
        </div>
        <button type="submit" disabled={run.isPending}>
          {run.isPending ? "Enrolling…" : "Enroll leads"}
        </button>
      </form>
      <div role="status" aria-live="polite">
        {run.data ? (
          <p className="notice">
            {run.data.enrolled} lead{run.data.enrolled === 1 ? "" : "s"} enrolled
            {skipped.length ? `; skipped: ${skipped.map(([reason, n]) => `${String(n)} ${reason.replaceAll("_", " ")}`).join(", ")}` : ""}.
          </p>
        ) : null}
      </div>
    </section>
  );
}

/** The campaign builder: life cycle, settings, steps with their copy and variants, schedule, enrollment. */
export default function Campaign() {
  const { campaignId = "" } = useParams();
  const session = useSession();
  const campaign = useQuery({ queryKey: campaignKeys.campaign(campaignId), queryFn: () => getCampaign(campaignId) });
  const steps = useQuery({ queryKey: campaignKeys.steps(campaignId), queryFn: () => listSteps(campaignId) });
  const brandId = campaign.data?.brand_id ?? "";
  const brand = useQuery({ queryKey: keys.brand(brandId), queryFn: () => getBrand(brandId), enabled: Boolean(brandId) });
  const readOnly = (session?.role ?? "viewer") === "viewer";

  if (campaign.isPending || campaign.error) {
    return (
      <ListState label="the campaign" isPending={campaign.isPending} error={campaign.error} items={[]} empty={null} onRetry={() => { void campaign.refetch(); }}>
        {() => null}
      </ListState>
    );
  }
  const data = campaign.data;
  const draft = data.status === "draft";
  const changeable = !readOnly && (draft || data.status === "active" || data.status === "paused");
  return (
    <div>
      <p>
        <Link to="/campaigns">All campaigns</Link>
      </p>
      <h1>{data.name}</h1>
      <p>
        {brand.data?.name ?? "…"} · time zone {data.timezone}
      </p>
      <Lifecycle campaign={data} />
      <div className="columns">
        <section aria-labelledby="steps-title">
          <h2 id="steps-title">Steps</h2>
          <ListState
            label="steps"
            isPending={steps.isPending}
            error={steps.error}
            items={steps.data}
            onRetry={() => { void steps.refetch(); }}
            empty={<p>No steps yet. Add the first message below.</p>}
          >
            {(items) => (
              <ul className="cards" aria-label="Steps">
                {items.map((step) => (
                  <li key={step.id} className="card">
                    <StepEditor campaignId={data.id} step={step} draft={draft} readOnly={!changeable} first={false} />
                  </li>
                ))}
              </ul>
            )}
          </ListState>
          {changeable ? (
            <div className="card">
              <StepEditor
                key={steps.data?.length ?? 0}
                campaignId={data.id}
                draft={draft}
                readOnly={false}
                first={(steps.data?.length ?? 0) === 0}
              />
            </div>
          ) : null}
          <p className="field__hint">
            The server checks every template when a step is saved and names each unknown variable or syntax
            error under its field. Each saved step's preview renders its copy, as you type it, for a lead you
            pick, exactly as the worker composes it (signature, sign-off and opt-out wording included); AI
            personalization, when on, rewrites it only when it goes out (see a message's page once sent).
          </p>
        </section>
        <div>
          <Settings key={data.updated_at} campaign={data} readOnly={!changeable} />
          <Schedule campaignId={data.id} />
          {changeable && data.status !== "completed" ? <Enroll campaignId={data.id} /> : null}
        </div>
      </div>
    </div>
  );
}
