import { render, screen, within } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { describe, expect, it } from "vitest";
import type { LeadRead } from "./api";
import { LeadTable } from "./Leads";

function lead(n: number): LeadRead {
  return {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
    email: `lead${String(n)}@example.com`,
    phone: null,
    first_name: "Lead",
    last_name: String(n),
    company: "Hopper Labs",
    title: null,
    timezone: null,
    custom_fields: {},
    consent_email_at: null,
    consent_sms_at: null,
    consent_voice_at: null,
    consent_source: null,
    consent_sms_source: null,
    consent_voice_source: null,
    status: "active",
    import_id: null,
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    erased_at: null,
  };
}

describe("LeadTable", () => {
  it("renders one page of 100 leads, each linked to its page (and prints how long it took)", () => {
    const page = Array.from({ length: 100 }, (_, i) => lead(i));
    const started = performance.now();
    render(
      <MemoryRouter>
        <LeadTable leads={page} />
      </MemoryRouter>,
    );
    const elapsed = performance.now() - started;
    // A figure to watch, not a gate: jsdom on a shared machine is slower than a browser.
    console.info(`LeadTable: 100 rows rendered in ${elapsed.toFixed(1)} ms (jsdom)`);
    const table = screen.getByRole("table", { name: "Leads" });
    expect(within(table).getAllByRole("row")).toHaveLength(101);
    expect(within(table).getByRole("link", { name: "lead42@example.com" })).toHaveAttribute(
      "href",
      "/leads/00000000-0000-4000-8000-000000000042",
    );
  });
});
