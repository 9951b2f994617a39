// The colour theme: light, dark, or whatever the system says (the default). The choice is kept in
// localStorage; the page's <html data-theme> always holds the resolved "light" or "dark", which
// styles.css keys its palette on. index.html sets it before the first paint (no flash of the wrong
// theme); this module keeps it current while the app runs.
import { useSyncExternalStore } from "react";

export type ThemeChoice = "light" | "dark" | "system";
export const THEME_KEY = "wspr.theme";
const THEME_COLOURS = { light: "#f6f7fb", dark: "#12131a" };

const listeners = new Set<() => void>();

export function loadTheme(): ThemeChoice {
  try {
    const v = localStorage.getItem(THEME_KEY);
    return v === "light" || v === "dark" ? v : "system";
  } catch {
    return "system";
  }
}

/** What a choice means right now: "system" follows prefers-color-scheme. */
export function resolveTheme(choice: ThemeChoice, systemDark: boolean): "light" | "dark" {
  return choice === "system" ? (systemDark ? "dark" : "light") : choice;
}

function systemDark(): boolean {
  return typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
}

function apply(): void {
  const theme = resolveTheme(loadTheme(), systemDark());
  const root = document.documentElement;
  root.dataset.theme = theme;
  // the browser's own UI (address bar on phones, the installed app's title bar) follows it too
  for (const meta of Array.from(document.querySelectorAll<HTMLMetaElement>('meta[name="theme-color"]'))) {
    meta.content = THEME_COLOURS[theme];
    meta.removeAttribute("media");
  }
  for (const l of listeners) l();
}

let started = false;

/** Applies the saved theme and follows the system's while the choice is "system". Call once at start-up. */
export function initTheme(): void {
  if (started || typeof document === "undefined") return;
  started = true;
  apply();
  if (typeof matchMedia === "function") matchMedia("(prefers-color-scheme: dark)").addEventListener("change", apply);
  // another tab changed it
  window.addEventListener("storage", (e) => e.key === THEME_KEY && apply());
}

export function setTheme(choice: ThemeChoice): void {
  try {
    if (choice === "system") localStorage.removeItem(THEME_KEY);
    else localStorage.setItem(THEME_KEY, choice);
  } catch {
    /* storage unavailable: the choice lasts as long as the page */
  }
  apply();
}

function subscribe(fn: () => void): () => void {
  listeners.add(fn);
  return () => void listeners.delete(fn);
}

/** The saved choice, re-rendering when it changes. */
export function useThemeChoice(): ThemeChoice {
  return useSyncExternalStore(subscribe, loadTheme, () => "system" as const);
}
