import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link } from "react-router";
import { formErrors, toProblem } from "../../api/problem";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import {
  createSuppression,
  exportSuppressions,
  importSuppressions,
  leadKeys,
  listSuppressions,
  PAGE_SIZE,
  saveBlob,
  type SuppressionCreate,
} from "./api";
import { FIRST_PAGE, hasPrevious, listQuery, next, pageNumber, previous, type Paging } from "./paging";
import "./leads.css";

const CHANNELS: Record<string, string> = { all: "All channels", email: "Email", sms: "SMS", voicemail: "Voicemail" };
const REASONS: Record<string, string> = {
  manual: "Added by hand",
  unsubscribe: "Unsubscribed",
  stop: "Replied STOP",
  bounce: "Bounced",
  complaint: "Complained",
};
const ADD_FIELDS = ["value", "channel", "kind", "reason", "source"] as const;
type AddForm = { value: string; channel: string; reason: string; source: string };
const EMPTY: AddForm = { value: "", channel: "all", reason: "manual", source: "" };

function body(form: AddForm): SuppressionCreate {
  const entry: SuppressionCreate = {
    value: form.value.trim(),
    channel: form.channel as SuppressionCreate["channel"],
    reason: form.reason as SuppressionCreate["reason"],
  };
  if (form.source.trim()) entry.source = form.source.trim();
  return entry;
}

function AddSuppression() {
  const queryClient = useQueryClient();
  const [form, setForm] = useState<AddForm>(EMPTY);
  const [added, setAdded] = useState<string | null>(null);
  const mutation = useMutation({
    mutationFn: createSuppression,
    onSuccess: async (entry) => {
      setForm(EMPTY);
      setAdded(entry.value);
      await queryClient.invalidateQueries({ queryKey: leadKeys.suppressions });
    },
  });
  const errors = formErrors(mutation.error, ADD_FIELDS);
  const set = (name: keyof AddForm) => (event: { target: { value: string } }) => {
    setForm((before) => ({ ...before, [name]: event.target.value }));
  };
  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setAdded(null);
    mutation.mutate(body(form));
  }
  return (
    <form onSubmit={submit} noValidate aria-label="Add a suppression">
      <h2>Add one</h2>
      {added ? (
        <p role="status" className="notice">
          {added} is suppressed.
        </p>
      ) : null}
      <FormError errors={errors} />
      <Field
        label="Email, phone or domain"
        name="value"
        hint="A domain (example.com) suppresses every address at it."
        autoComplete="off"
        value={form.value}
        onChange={set("value")}
        error={errors.fields.value ?? errors.fields.kind}
      />
      <SelectField label="Channel" name="channel" value={form.channel} onChange={set("channel")} error={errors.fields.channel}>
        {Object.entries(CHANNELS).map(([value, text]) => (
          <option key={value} value={value}>
            {text}
          </option>
        ))}
      </SelectField>
      <SelectField label="Reason" name="reason" value={form.reason} onChange={set("reason")} error={errors.fields.reason}>
        {Object.entries(REASONS).map(([value, text]) => (
          <option key={value} value={value}>
            {text}
          </option>
        ))}
      </SelectField>
      <Field label="Source" name="source" hint="Optional: where the request came from." value={form.source} onChange={set("source")} error={errors.fields.source} />
      <button type="submit" disabled={mutation.isPending}>
        {mutation.isPending ? "Adding…" : "Add suppression"}
      </button>
    </form>
  );
}

function ImportSuppressions() {
  const queryClient = useQueryClient();
  const [file, setFile] = useState<File | null>(null);
  const [channel, setChannel] = useState("all");
  const [reason, setReason] = useState("manual");
  const [missing, setMissing] = useState(false);
  const mutation = useMutation({
    mutationFn: (chosen: File) => importSuppressions(chosen, channel, reason),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: leadKeys.suppressions });
    },
  });
  const errors = formErrors(mutation.error, ["file", "channel", "reason"]);
  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setMissing(!file);
    if (file) mutation.mutate(file);
  }
  const result = mutation.data;
  return (
    <form onSubmit={submit} noValidate aria-label="Import suppressions">
      <h2>Import a CSV</h2>
      {result ? (
        <div role="status" className="notice">
          <p>
            {result.added.toLocaleString()} added, {result.existing.toLocaleString()} already there,{" "}
            {result.rejected.toLocaleString()} rejected.
          </p>
          {result.problems.length ? (
            <ul aria-label="Rejected rows">
              {result.problems.map((problem) => (
                <li key={problem.row}>
                  Row {problem.row}: {problem.reason}
                </li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
      <FormError errors={errors} />
      <Field
        label="Suppressions CSV"
        name="file"
        type="file"
        accept=".csv,text/csv,text/plain"
        hint="A value (or email, phone, domain) column; channel, reason and source columns are optional."
        error={missing ? "Choose a CSV file first." : errors.fields.file}
        onChange={(event) => {
          setFile(event.target.files?.[0] ?? null);
          setMissing(false);
          mutation.reset();
        }}
      />
      <SelectField
        label="Channel (when the file has none)"
        name="channel"
        value={channel}
        onChange={(event) => {
          setChannel(event.target.value);
        }}
        error={errors.fields.channel}
      >
        {Object.entries(CHANNELS).map(([value, text]) => (
          <option key={value} value={value}>
            {text}
          </option>
        ))}
      </SelectField>
      <SelectField
        label="Reason (when the file has none)"
        name="reason"
        value={reason}
        onChange={(event) => {
          setReason(event.target.value);
        }}
        error={errors.fields.reason}
      >
        {Object.entries(REASONS).map(([value, text]) => (
          <option key={value} value={value}>
            {text}
          </option>
        ))}
      </SelectField>
      <button type="submit" disabled={mutation.isPending}>
        {mutation.isPending ? "Importing…" : "Import suppressions"}
      </button>
    </form>
  );
}

export default function Suppressions() {
  const [draft, setDraft] = useState({ q: "", channel: "" });
  const [filters, setFilters] = useState({ q: "", channel: "" });
  const [paging, setPaging] = useState<Paging>(FIRST_PAGE);
  const query = listQuery(filters, paging, PAGE_SIZE);
  const list = useQuery({
    queryKey: leadKeys.suppressionList(query),
    queryFn: () => listSuppressions(query),
    placeholderData: keepPreviousData,
  });
  const exporting = useMutation({
    mutationFn: exportSuppressions,
    onSuccess: (blob) => {
      saveBlob(blob, "suppressions.csv");
    },
  });
  const searchErrors = formErrors(list.error, ["q", "channel"]);
  const badSearch = Object.keys(searchErrors.fields).length > 0;
  const page = list.data;

  function search(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setPaging(FIRST_PAGE);
    setFilters(draft);
  }

  return (
    <div className="columns">
      <section aria-labelledby="suppressions-title">
        <p>
          <Link to="/leads">All leads</Link>
        </p>
        <h1 id="suppressions-title">Suppression list</h1>
        <p>Contacts here are never enrolled or sent to, whatever the campaign.</p>
        <div className="actions">
          <button
            type="button"
            className="button-secondary"
            disabled={exporting.isPending}
            onClick={() => {
              exporting.mutate();
            }}
          >
            {exporting.isPending ? "Exporting…" : "Export CSV"}
          </button>
          {exporting.error ? (
            <p className="field__error" role="alert">
              Could not export: {toProblem(exporting.error).detail}
            </p>
          ) : null}
        </div>
        <form role="search" aria-label="Search suppressions" onSubmit={search} noValidate>
          <div className="filters filters--two">
            <Field
              label="Search suppressions"
              name="q"
              type="search"
              value={draft.q}
              onChange={(event) => {
                setDraft((before) => ({ ...before, q: event.target.value }));
              }}
              error={searchErrors.fields.q}
            />
            <SelectField
              label="Channel"
              name="channel"
              value={draft.channel}
              onChange={(event) => {
                setDraft((before) => ({ ...before, channel: event.target.value }));
              }}
              error={searchErrors.fields.channel}
            >
              <option value="">Any</option>
              {Object.entries(CHANNELS).map(([value, text]) => (
                <option key={value} value={value}>
                  {text}
                </option>
              ))}
            </SelectField>
            <button type="submit">Search</button>
          </div>
        </form>
        <ListState
          label="suppressions"
          isPending={list.isPending}
          error={badSearch ? null : list.error}
          items={badSearch ? [] : page?.items}
          onRetry={() => {
            void list.refetch();
          }}
          empty={filters.q || filters.channel ? <p>No suppression matches.</p> : <p>The suppression list is empty.</p>}
        >
          {(items) => (
            <>
              <p role="status" aria-live="polite">
                Page {pageNumber(paging)}: {items.length} entr{items.length === 1 ? "y" : "ies"}
              </p>
              <div className="table-scroll" tabIndex={0} role="region" aria-label="Suppressions table">
                <table aria-label="Suppressions">
                  <thead>
                    <tr>
                      <th scope="col">Value</th>
                      <th scope="col">Kind</th>
                      <th scope="col">Channel</th>
                      <th scope="col">Reason</th>
                      <th scope="col">Source</th>
                      <th scope="col">Added</th>
                    </tr>
                  </thead>
                  <tbody>
                    {items.map((entry) => (
                      <tr key={entry.id}>
                        <td>{entry.kind === "hash" ? "(erased contact)" : entry.value}</td>
                        <td>{entry.kind}</td>
                        <td>{entry.channel}</td>
                        <td>{entry.reason}</td>
                        <td>{entry.source ?? ""}</td>
                        <td>{new Date(entry.created_at).toLocaleDateString()}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )}
        </ListState>
        <nav className="pager" aria-label="Pages of suppressions">
          <button
            type="button"
            className="button-secondary"
            disabled={!hasPrevious(paging) || list.isFetching}
            onClick={() => {
              setPaging(previous);
            }}
          >
            Previous page
          </button>
          <button
            type="button"
            className="button-secondary"
            disabled={!page?.next_cursor || list.isFetching}
            onClick={() => {
              setPaging((before) => next(before, page?.next_cursor));
            }}
          >
            Next page
          </button>
        </nav>
      </section>
      <div className="stack">
        <AddSuppression />
        <ImportSuppressions />
      </div>
    </div>
  );
}
