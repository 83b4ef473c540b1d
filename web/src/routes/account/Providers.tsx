import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { formErrors } from "../../api/problem";
import { useSession } from "../../auth/useSession";
import { Field, SelectField } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import { AccountNav } from "./AccountNav";
import {
  accountKeys,
  atLeast,
  createCredential,
  deleteCredential,
  describeSecret,
  listCredentials,
  type CredentialCreate,
} from "./api";
import "./account.css";

const FIELDS = ["provider", "account_sid", "auth_token", "api_key", "model"] as const;
type Provider = CredentialCreate["provider"];

/** Provider credentials (Twilio, OpenAI): secrets shown only as set / last four, never read back. */
export default function Providers() {
  const session = useSession();
  const queryClient = useQueryClient();
  const admin = session ? atLeast(session.role, "admin") : false;
  const credentials = useQuery({ queryKey: accountKeys.credentials, queryFn: listCredentials });
  const [provider, setProvider] = useState<Provider>("twilio");
  const [form, setForm] = useState({ account_sid: "", auth_token: "", api_key: "", model: "" });
  const [saved, setSaved] = useState<string | null>(null);
  const refresh = () => queryClient.invalidateQueries({ queryKey: accountKeys.credentials });
  const create = useMutation({
    mutationFn: createCredential,
    onSuccess: async (created) => {
      setSaved(created.provider);
      setForm({ account_sid: "", auth_token: "", api_key: "", model: "" });
      await refresh();
    },
  });
  const remove = useMutation({ mutationFn: deleteCredential, onSuccess: refresh });
  const errors = formErrors(create.error, FIELDS);
  const set = (name: keyof typeof form) => (event: { target: { value: string } }) => {
    setForm((previous) => ({ ...previous, [name]: event.target.value }));
  };

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setSaved(null);
    const body: CredentialCreate =
      provider === "twilio"
        ? { provider, account_sid: form.account_sid.trim(), auth_token: form.auth_token }
        : { provider, api_key: form.api_key, ...(form.model.trim() ? { model: form.model.trim() } : {}) };
    create.mutate(body);
  }

  return (
    <div className="account">
      <h1>Provider credentials</h1>
      <AccountNav />
      <div className="columns">
        <section aria-labelledby="credentials-title">
          <h2 id="credentials-title">Stored credentials</h2>
          {remove.error ? <FormError errors={formErrors(remove.error, [])} /> : null}
          <ListState
            label="credentials"
            isPending={credentials.isPending}
            error={credentials.error}
            items={credentials.data?.items}
            onRetry={() => {
              void credentials.refetch();
            }}
            empty={<p>No provider credentials yet.</p>}
          >
            {(items) => (
              <ul className="cards" aria-label="Provider credentials">
                {items.map((item) => (
                  <li key={item.id} className="card">
                    <h3>{item.provider === "twilio" ? "Twilio" : "OpenAI"}</h3>
                    <dl className="facts">
                      {item.provider === "twilio" ? (
                        <>
                          <dt>Account SID</dt>
                          <dd>{item.account_sid ?? "—"}</dd>
                          <dt>Auth token</dt>
                          <dd>{describeSecret(item.auth_token)}</dd>
                        </>
                      ) : (
                        <>
                          <dt>API key</dt>
                          <dd>{describeSecret(item.api_key)}</dd>
                          <dt>Model</dt>
                          <dd>{item.model ?? "default"}</dd>
                        </>
                      )}
                    </dl>
                    {admin ? (
                      <button
                        type="button"
                        disabled={remove.isPending}
                        onClick={() => {
                          remove.mutate(item.id);
                        }}
                      >
                        Delete the {item.provider === "twilio" ? "Twilio" : "OpenAI"} credentials
                      </button>
                    ) : null}
                  </li>
                ))}
              </ul>
            )}
          </ListState>
        </section>
        {admin ? (
          <section aria-labelledby="new-credentials-title">
            <h2 id="new-credentials-title">Add credentials</h2>
            <form onSubmit={submit} noValidate aria-labelledby="new-credentials-title">
              {saved ? (
                <p role="status" className="notice">
                  Credentials saved.
                </p>
              ) : null}
              <FormError errors={errors} />
              <SelectField
                label="Provider"
                name="provider"
                value={provider}
                onChange={(e) => {
                  setProvider(e.target.value as Provider);
                }}
                error={errors.fields.provider}
              >
                <option value="twilio">Twilio</option>
                <option value="openai">OpenAI</option>
              </SelectField>
              {provider === "twilio" ? (
                <>
                  <Field label="Account SID" name="account_sid" value={form.account_sid} onChange={set("account_sid")} error={errors.fields.account_sid} />
                  <Field label="Auth token" name="auth_token" type="password" autoComplete="off" value={form.auth_token} onChange={set("auth_token")} error={errors.fields.auth_token} />
                </>
              ) : (
                <>
                  <Field label="API key" name="api_key" type="password" autoComplete="off" value={form.api_key} onChange={set("api_key")} error={errors.fields.api_key} />
                  <Field label="Model" name="model" hint="Leave empty for the default." value={form.model} onChange={set("model")} error={errors.fields.model} />
                </>
              )}
              <button type="submit" disabled={create.isPending}>
                {create.isPending ? "Saving…" : "Save credentials"}
              </button>
            </form>
          </section>
        ) : null}
      </div>
    </div>
  );
}
