import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { StepRead } from "./api";
import { StepEditor } from "./StepEditor";

const step = {
  id: "s1",
  campaign_id: "c1",
  position: 1,
  channel: "email",
  delay: 0,
  delay_unit: "minutes",
  delay_minutes: 0,
  business_days: false,
  subject_template: "Hi",
  body_template: "Hello",
  sms_template: null,
  script_template: null,
  audio_url: null,
  ai_instructions: null,
  variants: [],
  send_window: null,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
} as StepRead;

function stubServer() {
  const patches: Record<string, unknown>[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (request: Request) => {
      let body: unknown = { items: [], next_cursor: null };
      if (request.method === "PATCH") {
        const sent = (await request.json()) as Record<string, unknown>;
        patches.push(sent);
        body = { ...step, ...sent };
      }
      return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
    }),
  );
  return patches;
}

function renderEditor(value: StepRead) {
  render(
    <QueryClientProvider client={new QueryClient()}>
      <StepEditor campaignId="c1" step={value} draft readOnly={false} first />
    </QueryClientProvider>,
  );
  return screen.getByRole("form", { name: "Step 1" });
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("StepEditor send window", () => {
  it("keeps to the campaign's window by default and saves its own window when chosen", async () => {
    const patches = stubServer();
    const user = userEvent.setup();
    const form = renderEditor(step);
    expect(within(form).getByLabelText("The campaign's send window")).toBeChecked();
    expect(within(form).queryByRole("group", { name: "Step 1 send window" })).toBeNull();
    await user.click(within(form).getByLabelText("Its own send window"));
    const own = within(form).getByRole("group", { name: "Step 1 send window" });
    await user.click(within(own).getByLabelText("Saturday"));
    const start = within(own).getByLabelText("Start (local time)");
    await user.clear(start);
    await user.type(start, "10:00");
    await user.click(within(form).getByRole("button", { name: "Save step 1" }));
    await waitFor(() => { expect(patches).toHaveLength(1); });
    expect(patches[0]?.send_window).toEqual({ weekdays: [0, 1, 2, 3, 4, 5], start: "10:00", end: "17:00" });
    // Back to the campaign's: saved as null.
    await user.click(within(form).getByLabelText("The campaign's send window"));
    await user.click(within(form).getByRole("button", { name: "Save step 1" }));
    await waitFor(() => { expect(patches).toHaveLength(2); });
    expect(patches[1]?.send_window).toBeNull();
  });

  it("shows a step's own window when it has one", () => {
    stubServer();
    const form = renderEditor({ ...step, send_window: { weekdays: [2], start: "18:00", end: "19:00" } });
    expect(within(form).getByLabelText("Its own send window")).toBeChecked();
    const own = within(form).getByRole("group", { name: "Step 1 send window" });
    expect(within(own).getByLabelText("Wednesday")).toBeChecked();
    expect(within(own).getByLabelText("Monday")).not.toBeChecked();
    expect(within(own).getByLabelText("Start (local time)")).toHaveValue("18:00");
    expect(within(form).getByLabelText("Preview for lead")).toBeVisible();
  });
});
