/** Single sign-on on the sign-in page: whether it is offered, and what a refused attempt means. */
import { api, unwrap } from "../api/client";

export const ssoKey = ["auth", "sso"] as const;

export function getSso() {
  return unwrap(api.GET("/api/auth/sso"));
}

/** Where the "Sign in with …" link starts the flow (a plain link: the browser goes to the provider). */
export function ssoStartHref(next: string): string {
  return `/api/auth/sso/start?${new URLSearchParams({ next }).toString()}`;
}

const MESSAGES: Record<string, string> = {
  not_invited: "There is no Tidewater account for this email. Ask an admin of your team to invite you.",
  email_unverified: "Your provider has not verified this email address, so it cannot be used to sign in.",
  state_invalid: "That sign-in link expired or was already used. Please try again.",
  provider_refused: "The sign-in was cancelled or refused at your provider.",
  provider_unavailable: "Your sign-in provider could not be reached. Please try again in a moment.",
  provider_misconfigured: "Single sign-on is not set up correctly. Tell your administrator.",
  token_refused: "Your provider did not accept the sign-in. Please try again.",
  id_token_invalid: "Your provider's answer could not be verified. Please try again.",
  too_many_attempts: "Too many failed attempts. Please wait a few minutes and try again.",
  sso_disabled: "Single sign-on is not available here.",
};

/** A readable message for the `sso_error` code the callback redirected with. */
export function ssoErrorMessage(code: string): string {
  return MESSAGES[code] ?? "Single sign-on failed. Please try again.";
}
