import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import { VitePWA } from "vite-plugin-pwa";

// Paths under the homeserver's origin that must always reach the server, never the app shell.
const SERVER_PATHS = [/^\/_matrix\//, /^\/_synapse\//, /^\/\.well-known\//];

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
        navigateFallback: "/index.html",
        navigateFallbackDenylist: SERVER_PATHS,
        // never touch API traffic: no runtime caching of /_matrix, /_synapse, /.well-known
        runtimeCaching: [],
        cleanupOutdatedCaches: true,
        clientsClaim: true,
        skipWaiting: true,
      },
    }),
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
  },
} as any);
