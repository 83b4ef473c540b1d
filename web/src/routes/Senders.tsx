import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link, useParams } from "react-router";
import { formErrors, toProblem } from "../api/problem";
import {
  createSender,
  getBrand,
  keys,
  listSenders,
  verifySender,
  type SenderCreate,
  type SenderRead,
} from "../api/queries";
import { Field, SelectField } from "../components/Field";
import { FormError } from "../components/FormError";
import { ListState } from "../components/ListState";

const FIELDS = [
  "from_name",
  "from_address",
  "smtp_host",
  "smtp_port",
  "smtp_security",
  "smtp_username",
  "smtp_password",
] as const;
type Form = Record<(typeof FIELDS)[number], string>;
const EMPTY: Form = {
  from_name: "",
  from_address: "",
  smtp_host: "",
  smtp_port: "587",
  smtp_security: "starttls",
  smtp_username: "",
  smtp_password: "",
};
const SECURITY: Record<string, string> = { starttls: "STARTTLS", tls: "TLS", none: "None (local only)" };

function body(form: Form): SenderCreate {
  const port = Number.parseInt(form.smtp_port, 10);
  return {
    kind: "email",
    from_name: form.from_name.trim() || null,
    from_address: form.from_address.trim() || null,
    smtp_host: form.smtp_host.trim() || null,
    smtp_port: Number.isNaN(port) ? null : port,
    smtp_security: form.smtp_security as SenderCreate["smtp_security"],
    smtp_username: form.smtp_username || null,
    smtp_password: form.smtp_password || null,
  };
}

function VerifyButton({ brandId, sender }: { brandId: string; sender: SenderRead }) {
  const queryClient = useQueryClient();
  const verify = useMutation({
    mutationFn: () => verifySender(brandId, sender.id),
    onSettled: async () => {
      await queryClient.invalidateQueries({ queryKey: keys.senders(brandId) });
      await queryClient.invalidateQueries({ queryKey: keys.readiness(brandId) });
    },
  });
  const label = sender.from_address ?? sender.id;
  return (
    <div className="verify">
      <button type="button" onClick={() => { verify.mutate(); }} disabled={verify.isPending}>
        {verify.isPending ? `Verifying ${label}…` : `Verify ${label}`}
      </button>
      <p role="status" aria-live="polite">
        {verify.error ? `Verification failed: ${toProblem(verify.error).detail}` : null}
      </p>
    </div>
  );
}

function SenderItem({ brandId, sender }: { brandId: string; sender: SenderRead }) {
  const last = sender.last_verification;
  return (
    <li className="card" data-sender={sender.id}>
      <h3>
        {sender.from_name ? `${sender.from_name} ` : ""}
        &lt;{sender.from_address}&gt;
      </h3>
      <p>
        {sender.smtp_host}:{sender.smtp_port} · {sender.smtp_security}
      </p>
      <p className={sender.verified_at ? "badge badge--ok" : "badge"}>
        {sender.verified_at ? "Verified" : "Not verified"}
      </p>
      {last && !last.verified ? (
        <p className="field__error">
          Last check stopped at {last.stage}
          {last.reply ? `: ${last.reply}` : ""}
        </p>
      ) : null}
      <VerifyButton brandId={brandId} sender={sender} />
    </li>
  );
}

export default function Senders() {
  const { brandId = "" } = useParams();
  const queryClient = useQueryClient();
  const brand = useQuery({ queryKey: keys.brand(brandId), queryFn: () => getBrand(brandId) });
  const senders = useQuery({ queryKey: keys.senders(brandId), queryFn: () => listSenders(brandId) });
  const [form, setForm] = useState<Form>(EMPTY);
  const mutation = useMutation({
    mutationFn: (sender: SenderCreate) => createSender(brandId, sender),
    onSuccess: async () => {
      setForm(EMPTY);
      await queryClient.invalidateQueries({ queryKey: keys.senders(brandId) });
      await queryClient.invalidateQueries({ queryKey: keys.readiness(brandId) });
    },
  });
  const errors = formErrors(mutation.error, FIELDS);
  const set = (name: keyof Form) => (event: { target: { value: string } }) => {
    setForm((previous) => ({ ...previous, [name]: event.target.value }));
  };
  const emails = senders.data?.items.filter((sender) => sender.kind === "email");

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    mutation.mutate(body(form));
  }

  return (
    <div className="columns">
      <section aria-labelledby="senders-title">
        <p>
          <Link to="/brands">All brands</Link>
        </p>
        <h1 id="senders-title">Email senders{brand.data ? ` of ${brand.data.name}` : ""}</h1>
        <ListState
          label="senders"
          isPending={senders.isPending}
          error={senders.error}
          items={emails}
          onRetry={() => { void senders.refetch(); }}
          empty={<p>No email sender yet. Add the SMTP account your emails go out through.</p>}
        >
          {(items) => (
            <ul className="cards" aria-label="Email senders">
              {items.map((sender) => (
                <SenderItem key={sender.id} brandId={brandId} sender={sender} />
              ))}
            </ul>
          )}
        </ListState>
        <p>
          <Link to={`/?brand=${brandId}`}>Back to the checklist</Link>
        </p>
      </section>
      <section aria-labelledby="new-sender-title">
        <h2 id="new-sender-title">Add an email sender</h2>
        <form onSubmit={submit} noValidate aria-label="Add an email sender">
          <FormError errors={errors} />
          <Field label="From name" name="from_name" value={form.from_name} onChange={set("from_name")} error={errors.fields.from_name} />
          <Field
            label="From address"
            name="from_address"
            type="email"
            value={form.from_address}
            onChange={set("from_address")}
            error={errors.fields.from_address}
          />
          <Field label="SMTP host" name="smtp_host" value={form.smtp_host} onChange={set("smtp_host")} error={errors.fields.smtp_host} />
          <Field
            label="SMTP port"
            name="smtp_port"
            type="number"
            inputMode="numeric"
            value={form.smtp_port}
            onChange={set("smtp_port")}
            error={errors.fields.smtp_port}
          />
          <SelectField
            label="Connection security"
            name="smtp_security"
            value={form.smtp_security}
            onChange={set("smtp_security")}
            error={errors.fields.smtp_security}
          >
            {Object.entries(SECURITY).map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </SelectField>
          <Field
            label="SMTP username"
            name="smtp_username"
            autoComplete="off"
            value={form.smtp_username}
            onChange={set("smtp_username")}
            error={errors.fields.smtp_username}
          />
          <Field
            label="SMTP password"
            name="smtp_password"
            type="password"
            autoComplete="new-password"
            value={form.smtp_password}
            onChange={set("smtp_password")}
            error={errors.fields.smtp_password}
          />
          <button type="submit" disabled={mutation.isPending}>
            {mutation.isPending ? "Adding…" : "Add sender"}
          </button>
        </form>
      </section>
    </div>
  );
}
