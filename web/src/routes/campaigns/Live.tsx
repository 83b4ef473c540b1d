import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useReducer, useState } from "react";
import { Link, useParams } from "react-router";
import { sessionStore } from "../../auth/session";
import { ListState } from "../../components/ListState";
import { campaignKeys, getCampaign, listMessages } from "./api";
import { initialLive, liveReducer, total } from "./counts";
import { readStream } from "./stream";
import "./campaigns.css";

const STATES = ["queued", "sending", "sent", "delivered", "held", "skipped", "failed", "bounced", "unknown"];
const RETRY_MS = 3000;

/** The live campaign view: message counts by state from the stream, and the latest messages. */
export default function Live() {
  const { campaignId = "" } = useParams();
  const queryClient = useQueryClient();
  const campaign = useQuery({ queryKey: campaignKeys.campaign(campaignId), queryFn: () => getCampaign(campaignId) });
  const messages = useQuery({ queryKey: campaignKeys.messages(campaignId), queryFn: () => listMessages(campaignId) });
  const [live, dispatch] = useReducer(liveReducer, initialLive);
  const [connection, setConnection] = useState<"connecting" | "live" | "lost">("connecting");

  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const connect = () => {
      const token = sessionStore.accessToken();
      if (!token) return;
      setConnection("connecting");
      readStream(
        `/api/campaigns/${encodeURIComponent(campaignId)}/stream`,
        token,
        (item) => {
          setConnection("live");
          dispatch(item);
          if (item.type === "event") void queryClient.invalidateQueries({ queryKey: campaignKeys.messages(campaignId) });
        },
        abort.signal,
      )
        .catch(() => undefined)
        .finally(() => {
          if (abort.signal.aborted) return;
          setConnection("lost");
          timer = setTimeout(connect, RETRY_MS);
        });
    };
    connect();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [campaignId, queryClient]);

  const shown = STATES.filter((s) => s in live.counts || ["queued", "sent", "failed"].includes(s));
  return (
    <div>
      <p>
        <Link to={`/campaigns/${campaignId}`}>Back to {campaign.data?.name ?? "the campaign"}</Link>
      </p>
      <h1>Live: {campaign.data?.name ?? "campaign"}</h1>
      <p role="status" aria-live="polite">
        {connection === "live" ? "Live" : connection === "connecting" ? "Connecting to the live stream…" : "Connection lost; reconnecting…"}
        {campaign.data ? ` · status ${campaign.data.status}` : ""}
      </p>
      <section aria-labelledby="counts-title">
        <h2 id="counts-title">Messages by state</h2>
        {live.snapshotAt === null && live.latest.length === 0 ? (
          <p className="list-state">Waiting for the first picture of the ledger…</p>
        ) : null}
        <dl className="counts" aria-label="Messages by state">
          {shown.map((s) => (
            <div key={s} data-state={s}>
              <dt>{s}</dt>
              <dd>{live.counts[s] ?? 0}</dd>
            </div>
          ))}
          <div data-state="total">
            <dt>total</dt>
            <dd>{total(live.counts)}</dd>
          </div>
        </dl>
        <p>Sent in the last minute: {live.sentLastMinute}</p>
      </section>
      <section aria-labelledby="events-title">
        <h2 id="events-title">Latest events</h2>
        {live.latest.length === 0 ? (
          <p>No event since you opened this page.</p>
        ) : (
          <ul aria-label="Latest events">
            {live.latest.map((e) => (
              <li key={e.id}>
                {new Date(e.at * 1000).toLocaleTimeString()} · {e.kind}
                {e.channel ? ` · ${e.channel}` : ""}
                {e.reason ? ` · ${e.reason}` : ""}
                {e.message_id ? (
                  <>
                    {" "}
                    · <Link to={`/messages/${e.message_id}`}>message</Link>
                  </>
                ) : null}
              </li>
            ))}
          </ul>
        )}
      </section>
      <section aria-labelledby="messages-title">
        <h2 id="messages-title">Latest messages</h2>
        <ListState
          label="messages"
          isPending={messages.isPending}
          error={messages.error}
          items={messages.data?.items}
          onRetry={() => { void messages.refetch(); }}
          empty={<p>No message yet.</p>}
        >
          {(items) => (
            <div className="table-wrap">
              <table aria-label="Latest messages">
                <thead>
                  <tr>
                    <th scope="col">Message</th>
                    <th scope="col">Channel</th>
                    <th scope="col">Variant</th>
                    <th scope="col">Status</th>
                    <th scope="col">Sent</th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((m) => (
                    <tr key={m.id}>
                      <td>
                        <Link to={`/messages/${m.id}`}>{m.subject ?? m.body?.slice(0, 60) ?? m.id}</Link>
                      </td>
                      <td>{m.channel}</td>
                      <td>{m.variant ?? "—"}</td>
                      <td>{m.status}</td>
                      <td>{m.sent_at ? new Date(m.sent_at).toLocaleString() : "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </ListState>
      </section>
    </div>
  );
}
