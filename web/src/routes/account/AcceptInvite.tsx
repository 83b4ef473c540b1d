import { useMutation } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link, useLocation, useNavigate } from "react-router";
import { formErrors } from "../../api/problem";
import { sessionFrom, sessionStore } from "../../auth/session";
import { Field } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { acceptInvite, inviteToken } from "./api";

const FIELDS = ["token", "password", "name"] as const;

/** The invite link's page: set a password (or give yours, if you have an account) and you are signed in. */
export default function AcceptInvite() {
  const location = useLocation();
  const navigate = useNavigate();
  const token = inviteToken(location.hash, location.search);
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const mutation = useMutation({
    mutationFn: acceptInvite,
    onSuccess: async (answer) => {
      sessionStore.set(sessionFrom(answer));
      await navigate("/", { replace: true });
    },
  });
  const errors = formErrors(mutation.error, FIELDS);

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    mutation.mutate({ token, password, name: name.trim() || null });
  }

  return (
    <main id="main" className="auth-page">
      <h1>Join your team on Tidewater</h1>
      {token ? (
        <form onSubmit={submit} noValidate aria-label="Accept the invite">
          <FormError errors={errors} />
          {errors.fields.token ? <p role="alert">{errors.fields.token}</p> : null}
          <Field
            label="Your name"
            name="name"
            autoComplete="name"
            value={name}
            onChange={(e) => {
              setName(e.target.value);
            }}
            error={errors.fields.name}
          />
          <Field
            label="Password"
            name="password"
            type="password"
            autoComplete="new-password"
            hint="New to Tidewater: choose one (12 characters or more). Already have an account: your password."
            value={password}
            onChange={(e) => {
              setPassword(e.target.value);
            }}
            error={errors.fields.password}
          />
          <button type="submit" disabled={mutation.isPending}>
            {mutation.isPending ? "Joining…" : "Accept the invite"}
          </button>
        </form>
      ) : (
        <p role="alert">This link has no invite in it. Ask whoever invited you for the link again.</p>
      )}
      <p>
        Already signed up? <Link to="/signin">Sign in</Link>
      </p>
    </main>
  );
}
