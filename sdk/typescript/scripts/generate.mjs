// Regenerates src/openapi.ts (the API's types) from the server's OpenAPI document.
//
//   npm run generate -- http://127.0.0.1:7411/openapi.json   (a running memoturnd)
//   npm run generate -- path/to/openapi.json [out.ts]        (a dumped document)
//
// tests/test_typescript_sdk.py runs it into a temporary file and fails if the committed
// src/openapi.ts differs, so the types cannot drift from the server.
import { readFile, writeFile } from "node:fs/promises";
import openapiTS, { astToString } from "openapi-typescript";

const HEADER = `/**
 * The Memoturn node API's types, generated from its OpenAPI document by openapi-typescript.
 * Do not edit: regenerate with \`npm run generate -- <openapi.json file or URL>\`.
 */

`;

const [source = "http://127.0.0.1:7411/openapi.json", out = "src/openapi.ts"] = process.argv.slice(2);
const text = /^https?:\/\//.test(source)
  ? await (await fetch(source)).text()
  : await readFile(source, "utf8");
const ast = await openapiTS(JSON.parse(text), { silent: true, defaultNonNullable: false });
await writeFile(out, HEADER + astToString(ast));
