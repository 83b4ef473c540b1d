import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { Field } from "./Field";
import { FormError } from "./FormError";

describe("Field", () => {
  it("labels the input and links its error to it", () => {
    render(<Field label="Email" name="email" error="not a valid email address" hint="Your work address." />);
    const input = screen.getByLabelText("Email");
    expect(input).toHaveAttribute("aria-invalid", "true");
    expect(input).toHaveAccessibleDescription("Your work address. not a valid email address");
    expect(screen.getByRole("alert")).toHaveTextContent("not a valid email address");
  });

  it("is plain without an error", () => {
    render(<Field label="Password" name="password" type="password" />);
    expect(screen.getByLabelText("Password")).not.toHaveAttribute("aria-invalid");
    expect(screen.queryByRole("alert")).toBeNull();
  });
});

describe("FormError", () => {
  it("shows the form-level message and errors for fields the form lacks", () => {
    render(<FormError errors={{ fields: {}, form: "One or more fields are invalid.", others: ["org_id: extra"] }} />);
    expect(screen.getByRole("alert")).toHaveTextContent("One or more fields are invalid.org_id: extra");
  });
});
