import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { Link, useLocation, useParams } from "react-router";
import { toProblem } from "../../api/problem";
import { ListState } from "../../components/ListState";
import { getImport, getReport, leadKeys, saveBlob } from "./api";
import { reportedTarget } from "./csv";
import { finished, fraction, pollInterval } from "./progress";
import "./leads.css";

const STATUS: Record<string, string> = {
  queued: "Waiting for a worker",
  running: "Importing",
  completed: "Done",
  failed: "Failed",
};

function expectedFrom(state: unknown): number | null {
  if (typeof state === "object" && state !== null && "expectedRows" in state) {
    const rows = state.expectedRows;
    return typeof rows === "number" ? rows : null;
  }
  return null;
}

export default function ImportProgress() {
  const { importId = "" } = useParams();
  const location = useLocation();
  const expected = expectedFrom(location.state);
  const query = useQuery({
    queryKey: leadKeys.import(importId),
    queryFn: () => getImport(importId),
    refetchInterval: (q) => pollInterval(q.state.data),
  });
  const report = useMutation({
    mutationFn: () => getReport(importId),
    onSuccess: (blob) => {
      saveBlob(blob, `import-${importId}-rejected.csv`);
    },
  });
  const item = query.data;
  const value = item ? fraction(item, expected) : null;
  const done = item ? finished(item) : false;
  const mapping = Object.entries(item?.mapping ?? {});
  const queryClient = useQueryClient();
  // Once the import ends, the lead lists and the list of imports are out of date.
  useEffect(() => {
    if (!done) return;
    void queryClient.invalidateQueries({ queryKey: leadKeys.leads });
    void queryClient.invalidateQueries({ queryKey: leadKeys.imports, exact: true });
  }, [done, queryClient]);

  return (
    <section aria-labelledby="progress-title">
      <p>
        <Link to="/leads/import">Import another file</Link> · <Link to="/leads">All leads</Link>
      </p>
      <h1 id="progress-title">Import{item?.filename ? ` of ${item.filename}` : ""}</h1>
      <ListState
        label="the import"
        isPending={query.isPending}
        error={query.error}
        items={item ? [item] : undefined}
        onRetry={() => {
          void query.refetch();
        }}
        empty={null}
      >
        {([current]) =>
          current ? (
            <>
              <div className="progress">
                <label htmlFor="import-progress">Progress</label>
                <progress
                  id="import-progress"
                  max={1}
                  {...(value === null ? {} : { value })}
                  aria-valuetext={value === null ? "in progress" : `${String(Math.round(value * 100))}%`}
                />
                <p role="status" aria-live="polite" data-status={current.status}>
                  {STATUS[current.status] ?? current.status}
                  {current.status === "running" || done
                    ? `: ${current.rows_read.toLocaleString()} rows read${
                        expected && !done ? ` of about ${expected.toLocaleString()}` : ""
                      }`
                    : ""}
                </p>
              </div>
              {current.error ? (
                <p className="form-error" role="alert">
                  {current.error}
                </p>
              ) : null}
              <dl className="stats" aria-label="Rows">
                <div>
                  <dt>Imported</dt>
                  <dd>{current.rows_imported.toLocaleString()}</dd>
                </div>
                <div>
                  <dt>Updated</dt>
                  <dd>{current.rows_updated.toLocaleString()}</dd>
                </div>
                <div>
                  <dt>Rejected</dt>
                  <dd>{current.rows_rejected.toLocaleString()}</dd>
                </div>
                <div>
                  <dt>Duplicates</dt>
                  <dd>{current.rows_duplicate.toLocaleString()}</dd>
                </div>
                <div>
                  <dt>Suppressed</dt>
                  <dd>{current.rows_suppressed.toLocaleString()}</dd>
                </div>
              </dl>
              {done ? (
                <div className="actions">
                  {current.rows_rejected > 0 ? (
                    <button
                      type="button"
                      onClick={() => {
                        report.mutate();
                      }}
                      disabled={report.isPending}
                    >
                      {report.isPending ? "Preparing the report…" : "Download rejected rows (CSV)"}
                    </button>
                  ) : (
                    <p>No row was rejected.</p>
                  )}
                  <Link to={`/leads?import_id=${current.id}`}>Leads of this import</Link>
                </div>
              ) : null}
              {report.error ? (
                <p className="field__error" role="alert">
                  Could not download the report: {toProblem(report.error).detail}
                </p>
              ) : null}
              <h2>Column mapping used</h2>
              {mapping.length ? (
                <div className="table-scroll" tabIndex={0} role="region" aria-label="Column mapping used">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Column</th>
                        <th scope="col">Goes to</th>
                      </tr>
                    </thead>
                    <tbody>
                      {mapping.map(([column, target]) => (
                        <tr key={column}>
                          <td>{column}</td>
                          <td>{reportedTarget(target)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              ) : (
                <p>The server reports the mapping once it has read the header.</p>
              )}
            </>
          ) : null
        }
      </ListState>
    </section>
  );
}
