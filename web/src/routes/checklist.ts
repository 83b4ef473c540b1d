import type { Readiness } from "../api/queries";

export interface ChecklistItem {
  id: string;
  label: string;
  done: boolean;
  /** Where to do it. */
  to: string;
}

/**
 * The email onboarding steps, read from GET /api/brands/{id}/readiness: each step is done
 * unless the email channel still lists its gap code as missing.
 */
export function emailChecklist(brandId: string | null, readiness: Readiness | undefined): ChecklistItem[] {
  const missing = new Set((readiness?.channels.email?.missing ?? []).map((gap) => gap.code));
  const known = brandId !== null && readiness !== undefined;
  const senders = brandId ? `/brands/${brandId}/senders` : "/brands";
  return [
    { id: "brand", label: "Create a brand", done: brandId !== null, to: "/brands" },
    {
      id: "postal_address",
      label: "Add the brand's postal address",
      done: known && !missing.has("postal_address"),
      to: "/brands",
    },
    {
      id: "opt_out_email",
      label: "Write the email opt-out wording",
      done: known && !missing.has("opt_out_email"),
      to: "/brands",
    },
    { id: "email_sender", label: "Add an email sender", done: known && !missing.has("email_sender"), to: senders },
    {
      id: "verified_email_sender",
      label: "Verify the email sender",
      done: known && !missing.has("email_sender") && !missing.has("verified_email_sender"),
      to: senders,
    },
  ];
}
