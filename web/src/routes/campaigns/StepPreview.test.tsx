import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, render, renderHook, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { sessionStore } from "../../auth/session";
import type { PreviewFields } from "./preview";
import { PREVIEW_DEBOUNCE_MS, previewKeys, useDebounced } from "./preview";
import { StepPreview } from "./StepPreview";

const LEADS = {
  items: [
    { id: "l1", first_name: "Ada", last_name: "Lovelace", email: "ada@ae.example", company: "AE" },
    { id: "l2", first_name: "Grace", last_name: "Hopper", email: "grace@navy.example", company: null },
  ],
  next_cursor: null,
};

function json(body: unknown, status = 200) {
  const type = status >= 400 ? "application/problem+json" : "application/json";
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { "content-type": type } }));
}

interface Call {
  path: string;
  query: string;
  body: Record<string, unknown> | null;
}

/** A stand-in server: the lead list, and a preview that echoes the body template it was sent. */
function stubServer(answer?: (body: Record<string, unknown>) => Promise<Response>) {
  const calls: Call[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (request: Request) => {
      const url = new URL(request.url);
      const body = request.method === "POST" ? ((await request.json()) as Record<string, unknown>) : null;
      calls.push({ path: url.pathname, query: url.searchParams.get("q") ?? "", body });
      if (url.pathname === "/api/leads") return json(LEADS);
      if (answer && body) return answer(body);
      return json({
        step_id: "s1",
        lead_id: body?.lead_id,
        channel: "email",
        variant: body?.variant ?? null,
        subject: "Hi Ada",
        body: `rendered: ${String(body?.body_template)}`,
        default_copy: [],
        personalized: false,
        would_personalize: false,
        note: null,
      });
    }),
  );
  return calls;
}

const fields = (body: string): PreviewFields => ({ channel: "email", subject_template: "Hi {{ first_name }}", body_template: body, variants: [] });

function wrapper({ children }: { children: ReactNode }) {
  return <QueryClientProvider client={new QueryClient()}>{children}</QueryClientProvider>;
}

afterEach(() => {
  sessionStore.clear();
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("useDebounced", () => {
  it("settles on the last value once it rests, and ignores rebuilt but equal values", () => {
    vi.useFakeTimers();
    const { result, rerender } = renderHook(({ value }) => useDebounced(value), { initialProps: { value: { a: "1" } } });
    expect(result.current).toEqual({ a: "1" });
    rerender({ value: { a: "12" } });
    act(() => { vi.advanceTimersByTime(PREVIEW_DEBOUNCE_MS - 50); });
    rerender({ value: { a: "123" } });
    act(() => { vi.advanceTimersByTime(PREVIEW_DEBOUNCE_MS - 50); });
    expect(result.current).toEqual({ a: "1" });
    act(() => { vi.advanceTimersByTime(60); });
    expect(result.current).toEqual({ a: "123" });
    const settled = result.current;
    rerender({ value: { a: "123" } });
    expect(result.current).toEqual(settled);
  });

  it("keys the preview on the lead, the variant and the fields", () => {
    expect(previewKeys.preview("c", "s", "l1", "", fields("x"))).not.toEqual(previewKeys.preview("c", "s", "l2", "", fields("x")));
    expect(previewKeys.preview("c", "s", "l1", "", fields("x"))).toEqual(previewKeys.preview("c", "s", "l1", "", fields("x")));
    expect(previewKeys.preview("c", "s", "l1", "b", fields("x"))).not.toEqual(previewKeys.preview("c", "s", "l1", "", fields("x")));
  });
});

describe("StepPreview", () => {
  it("asks for a lead first, searches once typing rests, then previews what is typed", async () => {
    const calls = stubServer();
    const user = userEvent.setup();
    const { rerender } = render(
      <StepPreview campaignId="c1" stepId="s1" fields={fields("one")} variantKeys={[]} onFieldErrors={() => undefined} />,
      { wrapper },
    );
    expect(screen.getByText("Pick a lead to see this step as they would receive it.")).toBeVisible();
    await user.type(screen.getByLabelText("Find a lead to preview"), "ada");
    await waitFor(() => { expect(calls.some((c) => c.query === "ada")).toBe(true); });
    // One search for the whole word, none per keystroke.
    expect(calls.filter((c) => c.path === "/api/leads").map((c) => c.query)).toEqual(["", "ada"]);
    await user.selectOptions(screen.getByLabelText("Preview for lead"), "l1");
    expect(await screen.findByTestId("preview-body")).toHaveTextContent("rendered: one");
    expect(screen.getByTestId("preview-subject")).toHaveTextContent("Hi Ada");

    for (const text of ["t", "tw", "two"]) {
      rerender(<StepPreview campaignId="c1" stepId="s1" fields={fields(text)} variantKeys={[]} onFieldErrors={() => undefined} />);
    }
    await waitFor(() => { expect(screen.getByTestId("preview-body")).toHaveTextContent("rendered: two"); });
    const previews = calls.filter((c) => c.path === "/api/campaigns/c1/steps/s1/preview");
    expect(previews.map((c) => c.body?.body_template)).toEqual(["one", "two"]);
    expect(previews[1]?.body).toMatchObject({ lead_id: "l1", variant: null, channel: "email" });
  });

  it("shows a 422 inline and hands its field errors to the editor", async () => {
    stubServer(() =>
      json(
        {
          type: "about:blank",
          title: "Invalid",
          status: 422,
          detail: "A template is not valid.",
          code: "Invalid",
          errors: [{ field: "body_template", message: "unknown variable lead.nickname" }],
        },
        422,
      ),
    );
    const onFieldErrors = vi.fn();
    render(
      <StepPreview campaignId="c1" stepId="s1" fields={fields("{{ lead.nickname }}")} variantKeys={["A"]} onFieldErrors={onFieldErrors} />,
      { wrapper },
    );
    const user = userEvent.setup();
    await screen.findByRole("option", { name: /Ada Lovelace/ });
    await user.selectOptions(screen.getByLabelText("Preview for lead"), "l1");
    expect(await screen.findByRole("alert")).toHaveTextContent("body_template: unknown variable lead.nickname");
    await waitFor(() => { expect(onFieldErrors).toHaveBeenLastCalledWith({ body_template: "unknown variable lead.nickname" }); });
    expect(screen.getByLabelText("Preview variant")).toBeVisible();
  });
});
