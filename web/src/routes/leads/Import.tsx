import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useRef, useState, type DragEvent, type SyntheticEvent } from "react";
import { Link, useNavigate } from "react-router";
import { formErrors } from "../../api/problem";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import { createImport, leadKeys, listImports, newKey } from "./api";
import {
  assign,
  countRows,
  detectMapping,
  FIELD_LABELS,
  LEAD_FIELDS,
  mappingForServer,
  mappingProblems,
  previewFile,
  type Delimiter,
  type Mapping,
  type Preview,
  type Target,
} from "./csv";
import "./leads.css";

const SERVER_FIELDS = ["file", "mapping", "delimiter", "default_region", "unmapped", "consent_source", "check_mx"];
const DELIMITERS: Record<string, string> = { "": "Detect", ",": "Comma (,)", ";": "Semicolon (;)", tab: "Tab" };
const TARGETS: Target[] = [...LEAD_FIELDS, "custom", "ignore"];

interface Chosen {
  file: File;
  preview: Preview;
  /** Data rows counted in the file (for the progress bar). */
  rows: number;
  /** One key per chosen file: submitting twice gives back the first import. */
  key: string;
}

function delimiterOf(choice: string): Delimiter | undefined {
  if (choice === "tab") return "\t";
  return choice === "," || choice === ";" ? choice : undefined;
}

function shown(delimiter: Delimiter): string {
  return delimiter === "\t" ? "tabs" : delimiter === ";" ? "semicolons" : "commas";
}

/** The drop zone: a labelled file input that also takes a file dropped on it. */
function DropZone({ onFile, error }: { onFile: (file: File) => void; error: string | undefined }) {
  const [over, setOver] = useState(false);
  function drop(event: DragEvent<HTMLDivElement>) {
    event.preventDefault();
    setOver(false);
    const file = event.dataTransfer.files[0];
    if (file) onFile(file);
  }
  return (
    <div
      className={over ? "dropzone dropzone--over" : "dropzone"}
      data-testid="dropzone"
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => {
        setOver(false);
      }}
      onDrop={drop}
    >
      <Field
        label="CSV file"
        name="file"
        type="file"
        accept=".csv,text/csv,text/plain"
        error={error}
        hint="Choose a file, or drop it here. A header row, then one lead per row."
        onChange={(event) => {
          const file = event.target.files?.[0];
          if (file) onFile(file);
        }}
      />
    </div>
  );
}

function MappingTable({
  chosen,
  mapping,
  onChange,
  columnErrors,
}: {
  chosen: Chosen;
  mapping: Mapping;
  onChange: (column: string, target: Target) => void;
  columnErrors: Record<string, string>;
}) {
  const { header, rows } = chosen.preview;
  return (
    <>
      <p className="notice" role="status">
        {chosen.file.name}: about {chosen.rows.toLocaleString()} row{chosen.rows === 1 ? "" : "s"}, separated by {shown(chosen.preview.delimiter)}. Its
        first {rows.length} row{rows.length === 1 ? "" : "s"}:
      </p>
      <div className="table-scroll" tabIndex={0} role="region" aria-label="Column mapping and first rows">
        <table aria-label="Column mapping">
          <thead>
            <tr>
              {header.map((column, index) => (
                <th key={`${String(index)}-${column}`} scope="col">
                  {column || <em>(no name: skipped)</em>}
                </th>
              ))}
            </tr>
            <tr>
              {header.map((column, index) => (
                <td key={`${String(index)}-${column}`} className="mapping-cell">
                  {column ? (
                    <SelectField
                      label={`“${column}” goes to`}
                      name={`mapping-${column}`}
                      value={mapping[column] ?? "custom"}
                      error={columnErrors[column]}
                      onChange={(event) => {
                        onChange(column, event.target.value as Target);
                      }}
                    >
                      {TARGETS.map((target) => (
                        <option key={target} value={target}>
                          {FIELD_LABELS[target]}
                        </option>
                      ))}
                    </SelectField>
                  ) : null}
                </td>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row, r) => (
              <tr key={r}>
                {header.map((column, c) => (
                  <td key={`${String(c)}-${column}`}>{row[c] ?? ""}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function RecentImports() {
  const imports = useQuery({ queryKey: leadKeys.imports, queryFn: listImports });
  return (
    <section aria-labelledby="recent-imports-title">
      <h2 id="recent-imports-title">Recent imports</h2>
      <ListState
        label="imports"
        isPending={imports.isPending}
        error={imports.error}
        items={imports.data?.items}
        onRetry={() => {
          void imports.refetch();
        }}
        empty={<p>No imports yet.</p>}
      >
        {(items) => (
          <ul className="cards" aria-label="Recent imports">
            {items.map((item) => (
              <li key={item.id} className="card">
                <Link to={`/leads/imports/${item.id}`}>{item.filename ?? item.id}</Link>
                <p>
                  {item.status} · {item.rows_imported.toLocaleString()} imported · {item.rows_rejected.toLocaleString()}{" "}
                  rejected
                </p>
              </li>
            ))}
          </ul>
        )}
      </ListState>
    </section>
  );
}

export default function LeadImport() {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [chosen, setChosen] = useState<Chosen | null>(null);
  const [mapping, setMapping] = useState<Mapping>({});
  const [readError, setReadError] = useState<string | null>(null);
  const [delimiter, setDelimiter] = useState("");
  const [unmapped, setUnmapped] = useState<"custom" | "ignore">("custom");
  const [region, setRegion] = useState("");
  const [consentSource, setConsentSource] = useState("");
  const [checkMx, setCheckMx] = useState(false);
  const [tried, setTried] = useState(false);
  const reading = useRef(0);
  const mutation = useMutation({
    mutationFn: (current: Chosen) =>
      createImport(
        current.file,
        {
          mapping: mappingForServer(mapping),
          delimiter,
          default_region: region,
          unmapped,
          consent_source: consentSource,
          check_mx: checkMx,
        },
        current.key,
      ),
    onSuccess: async (item, current) => {
      await queryClient.invalidateQueries({ queryKey: leadKeys.imports });
      await navigate(`/leads/imports/${item.id}`, { state: { expectedRows: current.rows } });
    },
  });
  const errors = formErrors(mutation.error, SERVER_FIELDS);
  const local = mappingProblems(mapping);

  async function read(file: File, choice: string) {
    const ticket = ++reading.current;
    setReadError(null);
    mutation.reset();
    setTried(false);
    try {
      const [preview, rows] = await Promise.all([previewFile(file, delimiterOf(choice)), countRows(file)]);
      if (ticket !== reading.current) return;
      if (preview.header.length === 0) {
        setChosen(null);
        setReadError(`${file.name} is empty: it needs a header row, then one lead per row.`);
        return;
      }
      setChosen((previous) => ({ file, preview, rows, key: previous?.file === file ? previous.key : newKey() }));
      setMapping(detectMapping(preview.header, unmapped));
    } catch {
      if (ticket === reading.current) setReadError(`${file.name} could not be read.`);
    }
  }

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setTried(true);
    if (!chosen) {
      setReadError("Choose a CSV file first.");
      return;
    }
    if (local.form || Object.keys(local.columns).length) return;
    mutation.mutate(chosen);
  }

  const fileError = readError ?? errors.fields.file;
  const mappingError = (tried ? local.form : null) ?? errors.fields.mapping;

  return (
    <div className="columns">
      <section aria-labelledby="import-title">
        <p>
          <Link to="/leads">All leads</Link>
        </p>
        <h1 id="import-title">Import leads</h1>
        <form onSubmit={submit} noValidate aria-label="Import leads">
          <FormError errors={errors} />
          <DropZone
            onFile={(file) => {
              void read(file, delimiter);
            }}
            error={fileError}
          />
          {chosen ? (
            <>
              <h2>Column mapping</h2>
              <p className="field__hint">
                Detected from the column names the way the server detects them; change any column. Columns that map to
                no lead field become custom fields (or are ignored).
              </p>
              {mappingError ? (
                <p className="field__error" role="alert" id="mapping-error">
                  {mappingError}
                </p>
              ) : null}
              <MappingTable
                chosen={chosen}
                mapping={mapping}
                columnErrors={local.columns}
                onChange={(column, target) => {
                  setMapping((previous) => assign(previous, column, target, unmapped));
                }}
              />
            </>
          ) : null}
          <SelectField
            label="Separator"
            name="delimiter"
            value={delimiter}
            error={errors.fields.delimiter}
            onChange={(event) => {
              setDelimiter(event.target.value);
              if (chosen) void read(chosen.file, event.target.value);
            }}
          >
            {Object.entries(DELIMITERS).map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </SelectField>
          <SelectField
            label="Columns that match no lead field"
            name="unmapped"
            value={unmapped}
            error={errors.fields.unmapped}
            onChange={(event) => {
              const value = event.target.value === "ignore" ? "ignore" : "custom";
              setMapping((previous) =>
                Object.fromEntries(
                  Object.entries(previous).map(([column, target]) => [column, target === unmapped ? value : target]),
                ),
              );
              setUnmapped(value);
            }}
          >
            <option value="custom">Keep as custom fields</option>
            <option value="ignore">Ignore</option>
          </SelectField>
          <Field
            label="Default phone country"
            name="default_region"
            hint="Two letters, e.g. US or FR: for numbers written without a country code."
            maxLength={2}
            autoComplete="off"
            value={region}
            onChange={(event) => {
              setRegion(event.target.value.toUpperCase());
            }}
            error={errors.fields.default_region}
          />
          <Field
            label="Consent source"
            name="consent_source"
            hint="Where these leads' SMS and voicemail consent was recorded (when the file has consent columns)."
            maxLength={200}
            value={consentSource}
            onChange={(event) => {
              setConsentSource(event.target.value);
            }}
            error={errors.fields.consent_source}
          />
          <div className="checkbox">
            <input
              id="check-mx"
              type="checkbox"
              name="check_mx"
              checked={checkMx}
              onChange={(event) => {
                setCheckMx(event.target.checked);
              }}
            />
            <label htmlFor="check-mx">Also reject addresses whose domain accepts no mail</label>
          </div>
          <button type="submit" disabled={mutation.isPending}>
            {mutation.isPending ? "Uploading…" : "Start import"}
          </button>
        </form>
      </section>
      <RecentImports />
    </div>
  );
}
