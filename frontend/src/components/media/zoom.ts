// The viewer's zoom and pan, as pure functions: `scale` (1 = fitted to the screen) and a translation
// in pixels, with the image centred on the stage's centre.

export interface View {
  scale: number;
  x: number;
  y: number;
}

export const MAX_SCALE = 8;

export function clampScale(s: number): number {
  return Math.min(MAX_SCALE, Math.max(1, s));
}

/** Zooms to `scale` keeping the point `at` (relative to the stage's centre) where it is on screen. */
export function zoomAt(v: View, scale: number, at: { x: number; y: number }): View {
  if (scale <= 1) return { scale: 1, x: 0, y: 0 };
  const k = scale / v.scale;
  return { scale, x: at.x - (at.x - v.x) * k, y: at.y - (at.y - v.y) * k };
}
