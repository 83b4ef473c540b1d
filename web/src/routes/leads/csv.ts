/**
 * The client-side preview of a lead CSV: the header and first rows, read from the start of the
 * file, and the column mapping the server would detect (the same synonyms as the importer).
 * The server has no dry run, so this is what the screen shows before the upload; the import
 * resource then reports the mapping actually used.
 */

export const LEAD_FIELDS = [
  "email",
  "phone",
  "first_name",
  "last_name",
  "company",
  "title",
  "timezone",
  "consent_email",
  "consent_sms",
  "consent_voice",
  "consent_source",
] as const;
export type LeadField = (typeof LEAD_FIELDS)[number];
/** Where a column goes: a lead field, a custom field named after the column, or nowhere. */
export type Target = LeadField | "custom" | "ignore";
export type Delimiter = "," | ";" | "\t";

export const FIELD_LABELS: Record<Target, string> = {
  email: "Email",
  phone: "Phone",
  first_name: "First name",
  last_name: "Last name",
  company: "Company",
  title: "Job title",
  timezone: "Time zone",
  consent_email: "Email consent",
  consent_sms: "SMS consent",
  consent_voice: "Voicemail consent",
  consent_source: "Consent source",
  custom: "Custom field",
  ignore: "Ignore",
};

const SYNONYMS: Record<string, LeadField> = {};
function alias(field: LeadField, names: string[]) {
  for (const name of names) SYNONYMS[name] = field;
}
alias("email", ["email", "emailaddress", "mail", "workemail", "businessemail", "courriel"]);
alias("phone", ["phone", "phonenumber", "mobile", "mobilephone", "cell", "cellphone", "tel", "telephone", "sms"]);
alias("first_name", ["firstname", "first", "givenname", "forename", "prenom"]);
alias("last_name", ["lastname", "last", "surname", "familyname", "nom"]);
alias("company", ["company", "companyname", "organization", "organisation", "account", "employer"]);
alias("title", ["title", "jobtitle", "position", "role"]);
alias("timezone", ["timezone", "tz", "timezonename"]);
alias("consent_email", ["consentemail", "emailconsent", "emailoptin"]);
alias("consent_sms", ["consentsms", "smsconsent", "smsoptin"]);
alias("consent_voice", ["consentvoice", "voiceconsent", "consentvoicemail", "voicemailconsent"]);
alias("consent_source", ["consentsource"]);

/** The lead field a column name stands for (case, spaces and punctuation do not matter), if any. */
export function detectField(column: string): LeadField | null {
  return SYNONYMS[column.toLowerCase().replace(/[^0-9a-z]/g, "")] ?? null;
}

/** The delimiter used most outside quotes on the header line (`,` when none), as the server sniffs it. */
export function sniffDelimiter(line: string): Delimiter {
  const counts: Record<Delimiter, number> = { ",": 0, ";": 0, "\t": 0 };
  let quoted = false;
  for (const char of line) {
    if (char === '"') quoted = !quoted;
    else if (!quoted && (char === "," || char === ";" || char === "\t")) counts[char] += 1;
  }
  let best: Delimiter = ",";
  for (const d of [",", ";", "\t"] as const) if (counts[d] > counts[best]) best = d;
  return best;
}

export interface Preview {
  delimiter: Delimiter;
  header: string[];
  rows: string[][];
}

/**
 * Parse the header and up to ``maxRows`` rows of CSV text (RFC 4180 quotes, CRLF/LF/CR line ends,
 * a UTF-8 byte order mark). ``complete`` says whether ``text`` is the whole file: when it is only
 * the start, a last row cut in the middle is left out. Blank lines are skipped.
 */
export function parsePreview(
  text: string,
  { delimiter, maxRows = 5, complete = true }: { delimiter?: Delimiter | undefined; maxRows?: number; complete?: boolean } = {},
): Preview {
  const source = text.startsWith("\ufeff") ? text.slice(1) : text;
  const firstLine = /^[^\r\n]*/.exec(source.replace(/^[\r\n]+/, ""))?.[0] ?? "";
  const sep = delimiter ?? sniffDelimiter(firstLine);
  const records: string[][] = [];
  let record: string[] = [];
  let cell = "";
  let quoted = false;
  let i = 0;
  const push = () => {
    record.push(cell);
    cell = "";
    if (record.length > 1 || record[0] !== "") records.push(record);
    record = [];
  };
  while (i < source.length && records.length <= maxRows) {
    const char = source.charAt(i);
    if (quoted) {
      if (char === '"') {
        if (source[i + 1] === '"') {
          cell += '"';
          i += 1;
        } else quoted = false;
      } else cell += char;
    } else if (char === '"' && cell === "") quoted = true;
    else if (char === sep) {
      record.push(cell);
      cell = "";
    } else if (char === "\r" || char === "\n") {
      if (char === "\r" && source[i + 1] === "\n") i += 1;
      push();
    } else cell += char;
    i += 1;
  }
  if (i >= source.length && complete && (cell !== "" || record.length > 0)) push();
  const [header = [], ...rows] = records;
  return { delimiter: sep, header: header.map((name) => name.trim()), rows: rows.slice(0, maxRows) };
}

export type Mapping = Record<string, Target>;

/** The mapping the server would use with no ``mapping`` sent: synonyms, else a custom field. */
export function detectMapping(header: readonly string[], unmapped: "custom" | "ignore" = "custom"): Mapping {
  const mapping: Mapping = {};
  const taken = new Set<LeadField>();
  for (const column of header) {
    if (!column || column in mapping) continue;
    const field = detectField(column);
    if (field && !taken.has(field)) {
      taken.add(field);
      mapping[column] = field;
    } else mapping[column] = unmapped;
  }
  return mapping;
}

/** Change one column's target; a lead field another column had goes back to that column's default. */
export function assign(mapping: Mapping, column: string, target: Target, unmapped: "custom" | "ignore" = "custom"): Mapping {
  const next: Mapping = { ...mapping, [column]: target };
  if (target !== "custom" && target !== "ignore") {
    for (const [other, value] of Object.entries(next)) {
      if (other !== column && value === target) next[other] = unmapped;
    }
  }
  return next;
}

/** What is wrong with a mapping before it is sent: messages by column, and one for the whole mapping. */
export function mappingProblems(mapping: Mapping): { columns: Record<string, string>; form: string | null } {
  const columns: Record<string, string> = {};
  const seen = new Map<Target, string>();
  for (const [column, target] of Object.entries(mapping)) {
    if (target === "custom" || target === "ignore") continue;
    const first = seen.get(target);
    if (first !== undefined) columns[column] = `${FIELD_LABELS[target]} is already fed by “${first}”.`;
    else seen.set(target, column);
  }
  const form = seen.has("email") || seen.has("phone") ? null : "Map one column to Email or Phone: a lead needs one of them.";
  return { columns, form };
}

/** The ``mapping`` form field: every column named, custom fields as ``custom:<column>``. */
export function mappingForServer(mapping: Mapping): string {
  const out: Record<string, string> = {};
  for (const [column, target] of Object.entries(mapping)) {
    out[column] = target === "custom" ? `custom:${column}` : target;
  }
  return JSON.stringify(out);
}

/** The target of a server-reported mapping value (``custom:x`` → custom). */
export function reportedTarget(value: unknown): string {
  if (typeof value !== "string") return "Ignore";
  if (value.startsWith("custom:")) return `Custom field “${value.slice(7)}”`;
  if (value === "ignore") return "Ignore";
  return value in FIELD_LABELS ? FIELD_LABELS[value as Target] : value;
}

/** Count the data rows of a file without holding it in memory: newlines, less the header line. */
export async function countRows(file: Blob): Promise<number> {
  const reader = file.stream().getReader();
  let lines = 0;
  let last = 10;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (let at = value.indexOf(10); at !== -1; at = value.indexOf(10, at + 1)) lines += 1;
    if (value.length) last = value[value.length - 1] ?? 10;
  }
  if (last !== 10 && file.size > 0) lines += 1;
  return Math.max(0, lines - 1);
}

export const PREVIEW_BYTES = 65536;

/** Read the start of a file and preview it. */
export async function previewFile(file: Blob, delimiter?: Delimiter): Promise<Preview> {
  const head = file.slice(0, PREVIEW_BYTES);
  const text = await head.text();
  return parsePreview(text, { delimiter, complete: file.size <= PREVIEW_BYTES });
}
