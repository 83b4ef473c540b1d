import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Suspense, useEffect, useRef } from "react";
import { Navigate, NavLink, Outlet, useLocation, useNavigate, useNavigation } from "react-router";
import { sessionStore } from "../auth/session";
import { useSession } from "../auth/useSession";

/** The signed-in frame: skip link, navigation, who is signed in, sign-out, and the current screen. */
export default function Shell() {
  const session = useSession();
  const location = useLocation();
  const navigate = useNavigate();
  const navigation = useNavigation();
  const queryClient = useQueryClient();
  const main = useRef<HTMLElement>(null);
  // A new screen takes the focus, so keyboard and screen-reader users start at its content.
  useEffect(() => {
    main.current?.focus();
  }, [location.pathname]);
  const out = useMutation({
    mutationFn: async () => {
      await sessionStore.signOut().catch(() => undefined); // signed out locally whatever the server says
    },
    onSettled: async () => {
      sessionStore.clear();
      queryClient.clear();
      await navigate("/signin", { replace: true });
    },
  });

  if (!session) {
    const next = location.pathname + location.search;
    return <Navigate to={next === "/" ? "/signin" : `/signin?next=${encodeURIComponent(next)}`} replace />;
  }
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="shell__header">
        <span className="shell__brand">Tidewater</span>
        <nav aria-label="Main">
          <ul>
            <li>
              <NavLink to="/" end>
                Get started
              </NavLink>
            </li>
            <li>
              <NavLink to="/brands">Brands</NavLink>
            </li>
            <li>
              <NavLink to="/leads">Leads</NavLink>
            </li>
            <li>
              <NavLink to="/suppressions">Suppressions</NavLink>
            </li>
            <li>
              <NavLink to="/campaigns">Campaigns</NavLink>
            </li>
            <li>
              <NavLink to="/webhooks">Webhooks</NavLink>
            </li>
          </ul>
        </nav>
        <div className="shell__account">
          <NavLink to="/account">
            {session.user.name ?? session.user.email} · {session.organization.name}
          </NavLink>
          <button type="button" onClick={() => { out.mutate(); }} disabled={out.isPending}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1} aria-busy={navigation.state === "loading"}>
        <Suspense fallback={<p role="status">Loading…</p>}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}
