import { useMutation, useQuery } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { formErrors } from "../api/problem";
import { signIn } from "../api/queries";
import { sessionFrom, sessionStore } from "../auth/session";
import { Field } from "../components/Field";
import { FormError } from "../components/FormError";
import { safeNext } from "./next";
import { getSso, ssoErrorMessage, ssoKey, ssoStartHref } from "./sso";

const FIELDS = ["email", "password"] as const;

export default function SignIn() {
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const mutation = useMutation({
    mutationFn: signIn,
    onSuccess: async (answer) => {
      sessionStore.set(sessionFrom(answer));
      await navigate(safeNext(params.get("next")), { replace: true });
    },
  });
  const errors = formErrors(mutation.error, FIELDS);
  const sso = useQuery({ queryKey: ssoKey, queryFn: getSso, staleTime: 60_000 });
  const ssoError = params.get("sso_error");

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    mutation.mutate({ email, password });
  }

  return (
    <main id="main" className="auth-page">
      <h1>Sign in to Tidewater</h1>
      {ssoError ? (
        <p role="alert" className="form-error">
          {ssoErrorMessage(ssoError)}
        </p>
      ) : null}
      {sso.data?.enabled ? (
        <p>
          <a href={ssoStartHref(safeNext(params.get("next")))}>
            Sign in with {sso.data.name ?? "SSO"}
          </a>
        </p>
      ) : null}
      <form onSubmit={submit} noValidate aria-label="Sign in">
        <FormError errors={errors} />
        <Field
          label="Email"
          name="email"
          type="email"
          autoComplete="email"
          value={email}
          onChange={(e) => { setEmail(e.target.value); }}
          error={errors.fields.email}
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => { setPassword(e.target.value); }}
          error={errors.fields.password}
        />
        <button type="submit" disabled={mutation.isPending}>
          {mutation.isPending ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <p>
        New to Tidewater? <Link to="/signup">Create an account</Link>
      </p>
    </main>
  );
}
