import { useMutation } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link, useNavigate } from "react-router";
import { formErrors } from "../api/problem";
import { signUp } from "../api/queries";
import { sessionFrom, sessionStore } from "../auth/session";
import { Field } from "../components/Field";
import { FormError } from "../components/FormError";

const FIELDS = ["organization_name", "name", "email", "password"] as const;

export default function SignUp() {
  const navigate = useNavigate();
  const [form, setForm] = useState({ organization_name: "", name: "", email: "", password: "" });
  const mutation = useMutation({
    mutationFn: signUp,
    onSuccess: async (answer) => {
      sessionStore.set(sessionFrom(answer));
      await navigate("/", { replace: true });
    },
  });
  const errors = formErrors(mutation.error, FIELDS);
  const set = (name: keyof typeof form) => (event: { target: { value: string } }) => {
    setForm((previous) => ({ ...previous, [name]: event.target.value }));
  };

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    mutation.mutate({ ...form, name: form.name.trim() || null });
  }

  return (
    <main id="main" className="auth-page">
      <h1>Create your Tidewater account</h1>
      <form onSubmit={submit} noValidate aria-label="Sign up">
        <FormError errors={errors} />
        <Field
          label="Organization name"
          name="organization_name"
          autoComplete="organization"
          value={form.organization_name}
          onChange={set("organization_name")}
          error={errors.fields.organization_name}
        />
        <Field
          label="Your name"
          name="name"
          autoComplete="name"
          value={form.name}
          onChange={set("name")}
          error={errors.fields.name}
        />
        <Field
          label="Email"
          name="email"
          type="email"
          autoComplete="email"
          value={form.email}
          onChange={set("email")}
          error={errors.fields.email}
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          hint="At least 12 characters."
          value={form.password}
          onChange={set("password")}
          error={errors.fields.password}
        />
        <button type="submit" disabled={mutation.isPending}>
          {mutation.isPending ? "Creating account…" : "Create account"}
        </button>
      </form>
      <p>
        Already have an account? <Link to="/signin">Sign in</Link>
      </p>
    </main>
  );
}
