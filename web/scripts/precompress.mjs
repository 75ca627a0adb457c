// Writes gzip and brotli copies (name.gz, name.br) of the build's text files of 1 kB or more,
// which the API serves to browsers that accept them (services/api/.../webui.py): compressed once
// at build time, at the highest levels, instead of on every request.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const DIST = new URL("../dist/", import.meta.url).pathname;
const TEXT = /\.(js|mjs|css|html|svg|json|txt|map)$/;
const MIN_BYTES = 1024;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

let plain = 0;
let br = 0;
let gz = 0;
for (const path of files(DIST)) {
  if (!TEXT.test(path)) continue;
  const data = readFileSync(path);
  if (data.length < MIN_BYTES) continue;
  const brotli = brotliCompressSync(data, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length },
  });
  const gzip = gzipSync(data, { level: 9 });
  writeFileSync(`${path}.br`, brotli);
  writeFileSync(`${path}.gz`, gzip);
  plain += data.length;
  br += brotli.length;
  gz += gzip.length;
}
const kB = (n) => `${(n / 1024).toFixed(1)} kB`;
console.log(`precompressed ${kB(plain)} of text files: gzip ${kB(gz)}, br ${kB(br)}`);
