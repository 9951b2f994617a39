import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import { VitePWA } from "vite-plugin-pwa";
import { precompress } from "./scripts/precompress.ts";

// Paths under the homeserver's origin that must always reach the server, never the app shell.
const SERVER_PATHS = [/^\/_matrix\//, /^\/_synapse\//, /^\/\.well-known\//, /^\/_wspr\//];
// emojibase-data's chunks (src/lib/emoji.ts imports them lazily)
const EMOJI_CHUNKS = ["compact", "iamcal"];

export default defineConfig({
  base: "/",
  plugins: [
    react(),
    VitePWA({
      registerType: "autoUpdate",
      injectRegister: false, // registered from main.tsx (production only)
      includeAssets: ["favicon.svg", "icons/*.png"],
      manifest: {
        name: "WSPR",
        short_name: "WSPR",
        description: "Private, end-to-end encrypted chat on any Matrix homeserver",
        start_url: "/",
        scope: "/",
        display: "standalone",
        background_color: "#12131a",
        theme_color: "#6a4ff0",
        icons: [
          { src: "/icons/icon-192.png", sizes: "192x192", type: "image/png" },
          { src: "/icons/icon-512.png", sizes: "512x512", type: "image/png" },
          { src: "/icons/maskable-512.png", sizes: "512x512", type: "image/png", purpose: "maskable" },
        ],
      },
      workbox: {
        // the matrix-sdk-crypto WASM is ~8 MB and is part of the app shell
        maximumFileSizeToCacheInBytes: 16 * 1024 * 1024,
        globPatterns: ["**/*.{js,css,html,svg,png,wasm,webmanifest}"],
        // the emoji data (~72 kB compressed) is fetched when the picker or :completion is first used,
        // not with the app shell; once fetched it is kept for offline use (runtime cache below)
        globIgnores: EMOJI_CHUNKS.map((name) => `assets/${name}-*.js`),
        navigateFallback: "/index.html",
        navigateFallbackDenylist: SERVER_PATHS,
        // never touch API traffic: no runtime caching of /_matrix, /_synapse, /.well-known
        runtimeCaching: [
          {
            urlPattern: new RegExp(`/assets/(${EMOJI_CHUNKS.join("|")})-[\\w-]+\\.js$`),
            handler: "CacheFirst",
            options: { cacheName: "wspr-emoji", expiration: { maxEntries: 4 } },
          },
        ],
        // Web Push and notification clicks (public/push-sw.js)
        importScripts: ["/push-sw.js"],
        cleanupOutdatedCaches: true,
        clientsClaim: true,
        skipWaiting: true,
      },
    }),
    precompress(),
  ],
  optimizeDeps: { exclude: ["@matrix-org/matrix-sdk-crypto-wasm"] },
  build: {
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 4000,
  },
  test: {
    environment: "happy-dom",
    include: ["tests/**/*.test.{ts,tsx}"],
    setupFiles: ["tests/setup.ts"],
    // matrix-js-sdk logs every request: show a test's console output only when it fails
    silent: "passed-only",
  },
});
