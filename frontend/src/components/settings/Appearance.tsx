import { setTheme, useThemeChoice, type ThemeChoice } from "./theme";
import { setPref, usePrefs } from "./prefs";
import "./settings.css";

const THEMES: { value: ThemeChoice; label: string; hint: string }[] = [
  { value: "system", label: "System", hint: "Follows your device" },
  { value: "light", label: "Light", hint: "Always light" },
  { value: "dark", label: "Dark", hint: "Always dark" },
];

/** Settings → Appearance: the theme, and link previews. */
export function Appearance() {
  const theme = useThemeChoice();
  const prefs = usePrefs();
  return (
    <div className="stack" data-testid="appearance-tab">
      <fieldset className="theme-choice">
        <legend className="section-title">Theme</legend>
        {THEMES.map((t) => (
          <label key={t.value} className={`theme-option theme-option-${t.value} ${theme === t.value ? "on" : ""}`}>
            <input type="radio" name="theme" value={t.value} checked={theme === t.value} onChange={() => setTheme(t.value)} data-testid={`theme-${t.value}`} />
            <span className="theme-swatch" aria-hidden="true" />
            <strong>{t.label}</strong>
            <span className="muted small">{t.hint}</span>
          </label>
        ))}
      </fieldset>
      <fieldset className="stack tight plain-fieldset">
        <legend className="section-title">Link previews</legend>
        <label className="check">
          <input type="checkbox" checked={prefs.linkPreviews} onChange={(e) => setPref("linkPreviews", e.target.checked)} data-testid="pref-link-previews" /> Show previews of links in messages
        </label>
        <label className="check">
          <input type="checkbox" checked={prefs.encryptedLinkPreviews} disabled={!prefs.linkPreviews} onChange={(e) => setPref("encryptedLinkPreviews", e.target.checked)} data-testid="pref-encrypted-link-previews" /> Also in encrypted rooms
        </label>
        <p className="muted small">Your homeserver fetches the page to make a preview, so it learns which links were shared. That's why previews are off in encrypted rooms unless you turn them on.</p>
      </fieldset>
    </div>
  );
}
