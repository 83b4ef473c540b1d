import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import LeadImport from "./Import";

// jsdom's Blob lacks text() and stream(), which browsers have: read through its FileReader.
function readBytes(blob: Blob): Promise<ArrayBuffer> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      resolve(reader.result as ArrayBuffer);
    };
    reader.onerror = () => {
      reject(new Error("unreadable"));
    };
    reader.readAsArrayBuffer(blob);
  });
}
beforeAll(() => {
  const proto = Blob.prototype as { text?: unknown; stream?: unknown };
  proto.text ??= async function (this: Blob) {
    return new TextDecoder().decode(await readBytes(this));
  };
  proto.stream ??= function (this: Blob) {
    const bytes = readBytes(this);
    return new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new Uint8Array(await bytes));
        controller.close();
      },
    });
  };
});

afterEach(() => {
  vi.unstubAllGlobals();
});

function renderImport() {
  const router = createMemoryRouter([{ path: "/leads/import", Component: LeadImport }], {
    initialEntries: ["/leads/import"],
  });
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
}

describe("LeadImport", () => {
  it("previews a dropped file with the detected mapping and refuses, before any upload, a mapping without email or phone", async () => {
    const fetch = vi.fn((request: Request) =>
      Promise.resolve(
        new Response(JSON.stringify(request.url.includes("/imports") ? { items: [], next_cursor: null } : {}), {
          status: 200,
          headers: { "content-type": "application/json" },
        }),
      ),
    );
    vi.stubGlobal("fetch", fetch);
    renderImport();
    const user = userEvent.setup();
    const file = new File(["Work Email;Given Name;Shoe size\nada@x.example;Ada;38\n"], "people.csv", { type: "text/csv" });
    fireEvent.drop(screen.getByTestId("dropzone"), { dataTransfer: { files: [file] } });
    const table = await screen.findByRole("region", { name: "Column mapping and first rows" });
    expect(screen.getByText(/^people\.csv: about 1 row, separated by semicolons/)).toBeVisible();
    expect(within(table).getByRole("cell", { name: "ada@x.example" })).toBeVisible();
    expect(within(table).getByLabelText("“Work Email” goes to")).toHaveValue("email");
    expect(within(table).getByLabelText("“Given Name” goes to")).toHaveValue("first_name");
    expect(within(table).getByLabelText("“Shoe size” goes to")).toHaveValue("custom");

    await user.selectOptions(within(table).getByLabelText("“Work Email” goes to"), "ignore");
    const calls = fetch.mock.calls.length;
    await user.click(screen.getByRole("button", { name: "Start import" }));
    expect(await screen.findByText(/Map one column to Email or Phone/)).toBeVisible();
    expect(fetch.mock.calls.length).toBe(calls); // nothing was uploaded
  });
});
