import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link, useNavigate } from "react-router";
import { formErrors } from "../../api/problem";
import { keys, listBrands } from "../../api/queries";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import { campaignKeys, createCampaign, listCampaigns } from "./api";
import { SendWindowFields, windowOf, type WindowForm } from "./SendWindow";
import "./campaigns.css";

const FIELDS = ["brand_id", "name", "timezone", "send_window", "send_window.start", "send_window.end", "send_window.weekdays"];

/** Campaigns of the organization, and a form to start a new draft. */
export default function Campaigns() {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const campaigns = useQuery({ queryKey: campaignKeys.all, queryFn: listCampaigns });
  const brands = useQuery({ queryKey: keys.brands, queryFn: listBrands });
  const [brandId, setBrandId] = useState("");
  const [name, setName] = useState("");
  const [timezone, setTimezone] = useState(() => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
  const [sendWindow, setSendWindow] = useState<WindowForm>(windowOf(undefined));
  const create = useMutation({
    mutationFn: createCampaign,
    onSuccess: async (campaign) => {
      await queryClient.invalidateQueries({ queryKey: campaignKeys.all });
      await navigate(`/campaigns/${campaign.id}`);
    },
  });
  const errors = formErrors(create.error, FIELDS);
  const brandNames = new Map((brands.data?.items ?? []).map((b) => [b.id, b.name]));
  const chosen = brandId || brands.data?.items[0]?.id || "";

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    create.mutate({
      brand_id: chosen,
      name: name.trim(),
      timezone: timezone.trim(),
      send_window: sendWindow,
      review_first_n: 0, // review mode stays off from this form (the API spec marks the field required)
    });
  }

  return (
    <div className="columns">
      <section aria-labelledby="campaigns-title">
        <h1 id="campaigns-title">Campaigns</h1>
        <ListState
          label="campaigns"
          isPending={campaigns.isPending}
          error={campaigns.error}
          items={campaigns.data?.items}
          onRetry={() => { void campaigns.refetch(); }}
          empty={<p>No campaigns yet. Create a draft, add its steps, then enroll leads and launch it.</p>}
        >
          {(items) => (
            <ul className="cards" aria-label="Campaigns">
              {items.map((campaign) => (
                <li key={campaign.id} className="card">
                  <h2>
                    <Link to={`/campaigns/${campaign.id}`}>{campaign.name}</Link>
                  </h2>
                  <p>
                    <span className="badge">{campaign.status}</span> · {brandNames.get(campaign.brand_id) ?? "brand"} ·{" "}
                    {campaign.timezone}
                  </p>
                  {campaign.status !== "draft" ? (
                    <p>
                      <Link to={`/campaigns/${campaign.id}/live`}>Live view of {campaign.name}</Link>
                    </p>
                  ) : null}
                </li>
              ))}
            </ul>
          )}
        </ListState>
      </section>
      <section aria-labelledby="new-campaign-title">
        <h2 id="new-campaign-title">New campaign</h2>
        <form onSubmit={submit} noValidate aria-label="Create a campaign">
          <FormError errors={errors} />
          <SelectField
            label="Brand"
            name="brand_id"
            value={chosen}
            onChange={(e) => { setBrandId(e.target.value); }}
            error={errors.fields.brand_id}
            hint={brands.data?.items.length === 0 ? <Link to="/brands">Create a brand first</Link> : undefined}
          >
            {(brands.data?.items ?? []).map((brand) => (
              <option key={brand.id} value={brand.id}>
                {brand.name}
              </option>
            ))}
          </SelectField>
          <Field label="Campaign name" name="name" value={name} onChange={(e) => { setName(e.target.value); }} error={errors.fields.name} />
          <Field
            label="Time zone"
            name="timezone"
            value={timezone}
            onChange={(e) => { setTimezone(e.target.value); }}
            hint="IANA name (Europe/Paris); used for leads without their own"
            error={errors.fields.timezone}
          />
          <SendWindowFields value={sendWindow} onChange={setSendWindow} errors={errors.fields} />
          <button type="submit" disabled={create.isPending}>
            {create.isPending ? "Creating…" : "Create campaign"}
          </button>
        </form>
      </section>
    </div>
  );
}
