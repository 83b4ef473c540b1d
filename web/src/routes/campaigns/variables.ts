/** The template variables a step may use (libs/templating.py), and inserting one at the cursor. */

export const LEAD_FIELDS = [
  "first_name",
  "last_name",
  "full_name",
  "email",
  "phone",
  "company",
  "title",
  "timezone",
] as const;

export const BRAND_FIELDS = [
  "name",
  "website",
  "description",
  "value_proposition",
  "target_audience",
  "tone_of_voice",
  "email_signature",
  "sms_signoff",
  "postal_address",
] as const;

/** Every variable the picker offers (a custom field is `lead.custom.<name>`). */
export const VARIABLES: readonly string[] = [
  ...LEAD_FIELDS.map((f) => `lead.${f}`),
  ...BRAND_FIELDS.map((f) => `brand.${f}`),
];

const CUSTOM_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;

/** The variable of a custom lead field, or null when the name cannot be a Jinja attribute. */
export function customVariable(name: string): string | null {
  const trimmed = name.trim();
  return CUSTOM_NAME.test(trimmed) ? `lead.custom.${trimmed}` : null;
}

export interface Inserted {
  value: string;
  /** Where the cursor goes: right after the inserted placeholder. */
  cursor: number;
}

/** Put `{{ variable }}` in place of the selection [start, end) of `value` (clamped to the text). */
export function insertVariable(value: string, start: number, end: number, variable: string): Inserted {
  const from = Math.max(0, Math.min(start, end, value.length));
  const to = Math.min(value.length, Math.max(start, end, from));
  const placeholder = `{{ ${variable} }}`;
  return { value: value.slice(0, from) + placeholder + value.slice(to), cursor: from + placeholder.length };
}
