import { useQuery } from "@tanstack/react-query";
import { useEffect, useId, useState } from "react";
import { toProblem } from "../../api/problem";
import { Field, SelectField } from "../../components/Field";
import { leadSearchQuery, stepPreviewQuery, useDebounced, type PreviewFields } from "./preview";

interface Props {
  campaignId: string;
  stepId: string;
  /** The editor's current (unsaved) copy; debounced here before it reaches the server. */
  fields: PreviewFields;
  /** The step's variant keys, for the variant picker. */
  variantKeys: string[];
  /** The preview's field errors (a 422's ``errors[]``), for the editor to show under its fields. */
  onFieldErrors: (errors: Record<string, string>) => void;
}

function leadName(lead: { first_name?: string | null; last_name?: string | null; email?: string | null; phone?: string | null; company?: string | null }) {
  const name = [lead.first_name, lead.last_name].filter(Boolean).join(" ");
  const contact = lead.email ?? lead.phone ?? "";
  const label = [name, contact].filter(Boolean).join(" · ") || "(no name)";
  return lead.company ? `${label} (${lead.company})` : label;
}

/**
 * The step rendered for a chosen lead as the worker composes it: pick a lead by searching, and
 * the preview follows the copy as it is typed (after a short rest), before anything is saved.
 */
export function StepPreview({ campaignId, stepId, fields, variantKeys, onFieldErrors }: Props) {
  const [search, setSearch] = useState("");
  const [leadId, setLeadId] = useState("");
  const [variant, setVariant] = useState("");
  const q = useDebounced(search.trim());
  const debouncedFields = useDebounced(fields);
  const leads = useQuery(leadSearchQuery(q));
  const preview = useQuery(stepPreviewQuery(campaignId, stepId, leadId, variantKeys.includes(variant) ? variant : "", debouncedFields));
  const regionId = useId();

  const problem = preview.error ? toProblem(preview.error) : null;
  const fieldErrors = JSON.stringify(
    Object.fromEntries((problem?.errors ?? []).map((e) => [e.field, e.message])),
  );
  useEffect(() => { onFieldErrors(JSON.parse(fieldErrors) as Record<string, string>); }, [fieldErrors, onFieldErrors]);

  const choices = leads.data?.items ?? [];
  const data = preview.data;
  return (
    <section className="step-preview" aria-labelledby={`${regionId}-title`}>
      <h4 id={`${regionId}-title`}>Preview</h4>
      <div className="row">
        <Field
          label="Find a lead to preview"
          type="search"
          value={search}
          onChange={(e) => { setSearch(e.target.value); }}
          hint="Name, email, phone or company"
          error={leads.error ? toProblem(leads.error).detail : undefined}
        />
        <SelectField
          label="Preview for lead"
          value={leadId}
          onChange={(e) => { setLeadId(e.target.value); }}
          hint={leads.isFetching ? "Searching…" : choices.length ? undefined : "No lead matches."}
        >
          <option value="">Pick a lead…</option>
          {leadId && !choices.some((l) => l.id === leadId) ? <option value={leadId}>(the lead picked before)</option> : null}
          {choices.map((lead) => (
            <option key={lead.id} value={lead.id}>
              {leadName(lead)}
            </option>
          ))}
        </SelectField>
        {variantKeys.length ? (
          <SelectField label="Preview variant" value={variant} onChange={(e) => { setVariant(e.target.value); }}>
            <option value="">The step's copy</option>
            {variantKeys.map((key) => (
              <option key={key} value={key}>
                Variant {key}
              </option>
            ))}
          </SelectField>
        ) : null}
      </div>
      <div className="preview" aria-live="polite" aria-busy={preview.isFetching}>
        {!leadId ? (
          <p className="list-state">Pick a lead to see this step as they would receive it.</p>
        ) : problem ? (
          <div role="alert" className="field__error">
            <p>The preview cannot render: {problem.detail || problem.title}</p>
            {problem.errors?.length ? (
              <ul aria-label="Preview problems">
                {problem.errors.map((e, i) => (
                  <li key={i}>
                    {e.field}: {e.message}
                  </li>
                ))}
              </ul>
            ) : null}
          </div>
        ) : !data ? (
          <p className="list-state" role="status">
            Rendering the preview…
          </p>
        ) : (
          <article aria-label="Rendered message" className={preview.isPlaceholderData ? "preview--stale" : undefined}>
            {data.subject !== null ? (
              <p>
                <strong>Subject:</strong> <span data-testid="preview-subject">{data.subject}</span>
              </p>
            ) : null}
            <pre className="preview__body" data-testid="preview-body">
              {data.body}
            </pre>
            {data.default_copy.length ? (
              <p className="field__hint">Default copy stands in for: {data.default_copy.join(", ")}.</p>
            ) : null}
            <p className="field__hint">
              {data.would_personalize ? "AI personalization does not run in the preview. " : ""}
              {data.note ?? "This is the message the lead receives."}
            </p>
            {preview.isFetching ? <p className="field__hint">Updating…</p> : null}
          </article>
        )}
      </div>
    </section>
  );
}
