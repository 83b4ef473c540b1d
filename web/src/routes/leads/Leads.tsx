import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { memo, useState, type SyntheticEvent } from "react";
import { Link, useLocation, useSearchParams } from "react-router";
import { formErrors } from "../../api/problem";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import { leadKeys, listLeads, PAGE_SIZE, type LeadRead } from "./api";
import {
  FIRST_PAGE,
  filtersFrom,
  filtersTo,
  hasPrevious,
  listQuery,
  next,
  pageNumber,
  previous,
  type LeadFilters,
  type Paging,
} from "./paging";
import "./leads.css";

const FILTER_FIELDS = ["q", "status", "email", "company", "import_id"];

function name(lead: LeadRead): string {
  return [lead.first_name, lead.last_name].filter(Boolean).join(" ");
}

/** One page of leads as a table (only the page is ever rendered). */
export const LeadTable = memo(function LeadTable({ leads }: { leads: readonly LeadRead[] }) {
  return (
    <div className="table-scroll" tabIndex={0} role="region" aria-label="Leads table">
      <table aria-label="Leads">
        <thead>
          <tr>
            <th scope="col">Email</th>
            <th scope="col">Phone</th>
            <th scope="col">Name</th>
            <th scope="col">Company</th>
            <th scope="col">Status</th>
            <th scope="col">Added</th>
          </tr>
        </thead>
        <tbody>
          {leads.map((lead) => (
            <tr key={lead.id}>
              <td>
                <Link to={`/leads/${lead.id}`}>{lead.email ?? lead.phone ?? "(erased)"}</Link>
              </td>
              <td>{lead.phone ?? ""}</td>
              <td>{name(lead)}</td>
              <td>{lead.company ?? ""}</td>
              <td>{lead.status}</td>
              <td>{new Date(lead.created_at).toLocaleDateString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
});

export default function Leads() {
  const [params, setParams] = useSearchParams();
  const location = useLocation();
  const filters = filtersFrom(params);
  const [draft, setDraft] = useState<LeadFilters>(filters);
  const [paging, setPaging] = useState<Paging>(FIRST_PAGE);
  // The address bar changed (a link, back/forward): its filters replace the form's, from the first page.
  const [seen, setSeen] = useState(params.toString());
  if (seen !== params.toString()) {
    setSeen(params.toString());
    setDraft(filters);
    setPaging(FIRST_PAGE);
  }
  const query = listQuery(filters, paging, PAGE_SIZE);
  const leads = useQuery({
    queryKey: leadKeys.list(query),
    queryFn: () => listLeads(query),
    placeholderData: keepPreviousData,
  });
  const errors = formErrors(leads.error, FILTER_FIELDS);
  const filtered = Object.values(filters).some((value: string) => value.trim() !== "");
  const erased = (location.state as { erased?: string } | null)?.erased;

  function search(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setPaging(FIRST_PAGE);
    setParams(filtersTo(draft));
  }
  function clear() {
    setDraft(filtersFrom(new URLSearchParams()));
    setPaging(FIRST_PAGE);
    setParams(new URLSearchParams());
  }
  const set = (field: keyof LeadFilters) => (event: { target: { value: string } }) => {
    setDraft((before) => ({ ...before, [field]: event.target.value }));
  };
  const page = leads.data;
  const fieldError = Object.keys(errors.fields).length > 0;

  return (
    <section aria-labelledby="leads-title">
      <h1 id="leads-title">Leads</h1>
      <p className="actions">
        <Link to="/leads/import">Import leads from a CSV</Link>
        <Link to="/suppressions">Suppression list</Link>
      </p>
      {erased ? (
        <p role="status" className="notice">
          Lead {erased} was erased.
        </p>
      ) : null}
      <form role="search" aria-label="Search leads" onSubmit={search} noValidate>
        {fieldError ? <FormError errors={errors} /> : null}
        <div className="filters">
          <Field
            label="Search"
            name="q"
            type="search"
            hint="Email, phone, company or name."
            value={draft.q}
            onChange={set("q")}
            error={errors.fields.q}
          />
          <Field label="Email" name="email" value={draft.email} onChange={set("email")} error={errors.fields.email} />
          <Field label="Company" name="company" value={draft.company} onChange={set("company")} error={errors.fields.company} />
          <SelectField label="Status" name="status" value={draft.status} onChange={set("status")} error={errors.fields.status}>
            <option value="">Any</option>
            <option value="active">Active</option>
            <option value="suppressed">Suppressed</option>
            <option value="erased">Erased</option>
          </SelectField>
          <button type="submit">Search</button>
        </div>
        {filters.import_id ? (
          <p>
            Showing the leads of one import.{" "}
            <button type="button" className="button-secondary" onClick={clear}>
              Show all leads
            </button>
          </p>
        ) : null}
      </form>
      <ListState
        label="leads"
        isPending={leads.isPending}
        error={fieldError ? null : leads.error}
        items={fieldError ? [] : page?.items}
        onRetry={() => {
          void leads.refetch();
        }}
        empty={
          filtered ? (
            <p>
              No lead matches.{" "}
              <button type="button" className="button-secondary" onClick={clear}>
                Clear the search
              </button>
            </p>
          ) : (
            <p>
              No leads yet. <Link to="/leads/import">Import a CSV</Link> to add them.
            </p>
          )
        }
      >
        {(items) => (
          <>
            <p role="status" aria-live="polite">
              Page {pageNumber(paging)}: {items.length} lead{items.length === 1 ? "" : "s"}
              {leads.isFetching ? " (refreshing…)" : ""}
            </p>
            <LeadTable leads={items} />
          </>
        )}
      </ListState>
      <nav className="pager" aria-label="Pages of leads">
        <button
          type="button"
          className="button-secondary"
          disabled={!hasPrevious(paging) || leads.isFetching}
          onClick={() => {
            setPaging(previous);
          }}
        >
          Previous page
        </button>
        <button
          type="button"
          className="button-secondary"
          disabled={!page?.next_cursor || leads.isFetching}
          onClick={() => {
            setPaging((before) => next(before, page?.next_cursor));
          }}
        >
          Next page
        </button>
      </nav>
    </section>
  );
}
