import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SyntheticEvent } from "react";
import { Link } from "react-router";
import { formErrors } from "../../api/problem";
import { Field } from "../../components/Field";
import { FormError } from "../../components/FormError";
import { ListState } from "../../components/ListState";
import { createWebhook, EVENT_TYPES, listWebhooks, webhookKeys, type EventType, type WebhookCreated } from "./api";
import "../campaigns/campaigns.css";

/** Customer webhook endpoints: the list, a form to add one, and its signing secret shown once. */
export default function Webhooks() {
  const queryClient = useQueryClient();
  const webhooks = useQuery({ queryKey: webhookKeys.all, queryFn: listWebhooks });
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [events, setEvents] = useState<EventType[]>(["sent", "replied"]);
  const [created, setCreated] = useState<WebhookCreated | null>(null);
  const create = useMutation({
    mutationFn: createWebhook,
    onSuccess: async (answer) => {
      setCreated(answer);
      setUrl("");
      setDescription("");
      await queryClient.invalidateQueries({ queryKey: webhookKeys.all });
    },
  });
  const errors = formErrors(create.error, ["url", "event_types", "description"]);

  function submit(event: SyntheticEvent<HTMLFormElement>) {
    event.preventDefault();
    setCreated(null);
    create.mutate({ url: url.trim(), event_types: events, description: description.trim() || null });
  }

  return (
    <div className="columns">
      <section aria-labelledby="webhooks-title">
        <h1 id="webhooks-title">Webhooks</h1>
        <p>Tidewater posts signed events (HMAC-SHA256 of the body with the endpoint's secret) to these URLs.</p>
        {created ? (
          <div className="notice" role="status">
            <p>
              Endpoint created. Its signing secret is shown this once: store it now.
            </p>
            <p className="secret" aria-label="Signing secret">
              {created.secret}
            </p>
            <button type="button" className="button--quiet" onClick={() => { setCreated(null); }}>
              I have stored the secret
            </button>
          </div>
        ) : null}
        <ListState
          label="webhooks"
          isPending={webhooks.isPending}
          error={webhooks.error}
          items={webhooks.data?.items}
          onRetry={() => { void webhooks.refetch(); }}
          empty={<p>No webhook endpoint yet.</p>}
        >
          {(items) => (
            <ul className="cards" aria-label="Webhook endpoints">
              {items.map((w) => (
                <li key={w.id} className="card">
                  <h2>{w.url}</h2>
                  <p>
                    {w.active ? "Active" : "Inactive"} · {w.event_types.join(", ")}
                  </p>
                  {w.description ? <p>{w.description}</p> : null}
                  <p>
                    <Link to={`/webhooks/${w.id}`}>Deliveries to {w.url}</Link>
                  </p>
                </li>
              ))}
            </ul>
          )}
        </ListState>
      </section>
      <section aria-labelledby="new-webhook-title">
        <h2 id="new-webhook-title">Add an endpoint</h2>
        <form onSubmit={submit} noValidate aria-label="Add a webhook endpoint">
          <FormError errors={errors} />
          <Field label="URL" name="url" type="url" value={url} onChange={(e) => { setUrl(e.target.value); }} hint="https://…" error={errors.fields.url} />
          <fieldset aria-describedby={errors.fields.event_types ? "event-types-error" : undefined}>
            <legend>Events</legend>
            <div className="checks">
              {EVENT_TYPES.map((type) => (
                <label key={type}>
                  <input
                    type="checkbox"
                    checked={events.includes(type)}
                    onChange={(e) => {
                      setEvents(e.target.checked ? [...events, type] : events.filter((t) => t !== type));
                    }}
                  />
                  {type}
                </label>
              ))}
            </div>
            {errors.fields.event_types ? (
              <p id="event-types-error" className="field__error" role="alert">
                {errors.fields.event_types}
              </p>
            ) : null}
          </fieldset>
          <Field
            label="Description"
            name="description"
            value={description}
            onChange={(e) => { setDescription(e.target.value); }}
            error={errors.fields.description}
          />
          <button type="submit" disabled={create.isPending}>
            {create.isPending ? "Adding…" : "Add endpoint"}
          </button>
        </form>
      </section>
    </div>
  );
}
