// A Vite plugin: after `vite build` has written dist/ (the service worker included), writes a brotli
// (.br) and a gzip (.gz) copy next to every file worth compressing. The homeserver serves these to
// browsers that accept them (homeserver/http/static.py), so nothing is compressed per request.
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { brotliCompress, constants, gzip } from "node:zlib";
import type { Plugin } from "vite";

const COMPRESSIBLE = /\.(?:js|mjs|css|html|wasm|svg|json|webmanifest|txt)$/;
/** Below this, compression saves less than the request's own headers. */
const MIN_BYTES = 1024;

const brotli = promisify(brotliCompress);
const gz = promisify(gzip);

async function* files(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

/** Compresses every compressible file under `dir`; returns [file, original, brotli, gzip] sizes. */
export async function precompressDir(dir: string): Promise<[string, number, number, number][]> {
  const done: [string, number, number, number][] = [];
  const jobs: Promise<void>[] = [];
  for await (const path of files(dir)) {
    if (!COMPRESSIBLE.test(path) || (await stat(path)).size < MIN_BYTES) continue;
    jobs.push(
      (async () => {
        const data = await readFile(path);
        const [br, gzipped] = await Promise.all([
          brotli(data, {
            params: {
              [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
              [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
              [constants.BROTLI_PARAM_MODE]: path.endsWith(".wasm") ? constants.BROTLI_MODE_GENERIC : constants.BROTLI_MODE_TEXT,
            },
          }),
          gz(data, { level: constants.Z_BEST_COMPRESSION }),
        ]);
        // a copy that isn't smaller is never worth serving
        if (br.length < data.length) await writeFile(`${path}.br`, br);
        if (gzipped.length < data.length) await writeFile(`${path}.gz`, gzipped);
        done.push([path, data.length, br.length, gzipped.length]);
      })(),
    );
  }
  await Promise.all(jobs);
  return done;
}

export function precompress(): Plugin {
  let outDir = "dist";
  return {
    name: "wspr-precompress",
    apply: "build",
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    // last, and after the other plugins' closeBundle (vite-plugin-pwa writes sw.js there)
    closeBundle: {
      order: "post",
      sequential: true,
      async handler() {
        const done = await precompressDir(outDir);
        const sum = (i: 1 | 2 | 3) => done.reduce((n, d) => n + d[i], 0);
        const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
        this.environment.logger.info(`precompressed ${done.length} files: ${kib(sum(1))} → brotli ${kib(sum(2))}, gzip ${kib(sum(3))}`);
      },
    },
  };
}
