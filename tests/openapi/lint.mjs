#!/usr/bin/env node
// tests/openapi/lint.mjs FILE CHECK...: checks of an OpenAPI 3.1 document,
// for tests/e2e/openapi.sh.  For each CHECK, prints "== CHECK pass" or
// "== CHECK fail", then what is wrong as "# ..." lines; exits 1 if any
// failed, 0 if not (2 for a usage error).  CHECK is one of
//
//   validate  the document against the OpenAPI 3.1 schema, and every $ref
//             resolves (@seriousme/openapi-schema-validator)
//   schemas   every Schema Object compiles with Ajv in JSON Schema 2020-12
//             strict mode: the OpenAPI schema checks Schema Objects only
//             for being objects, so a misspelt keyword ("maxlength") would
//             pass it and silently mean nothing
//   examples  every media type example is valid against its schema
//   params    each path's {templates} and its path parameters agree;
//             operationIds are unique
//   dump      prints the operations and their request bodies for the
//             comparison with src/routes.c:
//               op METHOD PATH
//               auth METHOD PATH none|SCHEME
//               status METHOD PATH CODE...
//               body METHOD PATH required=BOOL closed=BOOL media=TYPE,...
//               field METHOD PATH NAME|TYPE|REQ|LO|HI|FORMAT
//             PATH is the full path (the server's path, /api/v1 or the
//             path item's own server's, then the template).
//
// Only node's standard library and the packages pinned in package.json.
import { readFileSync } from "node:fs";
import { argv, exit } from "node:process";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { parse } from "yaml";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const [file, ...wanted] = argv.slice(2);
if (!file || wanted.length === 0) {
	console.error("usage: lint.mjs FILE validate|schemas|examples|params|dump...");
	exit(2);
}

let problems = [];
const problem = (s) => problems.push(s);

function load() {
	return parse(readFileSync(file, "utf-8"));
}

// A local reference "#/a/b" of the document, or undefined.
function deref(doc, obj) {
	let seen = 0;
	while (obj && typeof obj.$ref === "string" && seen++ < 16) {
		if (!obj.$ref.startsWith("#/"))
			return undefined;
		obj = obj.$ref.slice(2).split("/")
		    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
		    .reduce((o, k) => (o == null ? undefined : o[k]), doc);
	}
	return obj;
}

function* operations(doc) {
	for (const [path, item] of Object.entries(doc.paths ?? {}))
		for (const m of METHODS)
			if (item[m])
				yield { path, item, method: m, op: item[m] };
}

// Every media type object of the document, with where it is.
function* mediaTypes(doc) {
	for (const { path, method, op } of operations(doc)) {
		const where = `${method.toUpperCase()} ${path}`;
		const body = deref(doc, op.requestBody);
		for (const [type, mt] of Object.entries(body?.content ?? {}))
			yield { where: `${where} request ${type}`, mt };
		for (const [status, r] of Object.entries(op.responses ?? {})) {
			if (r.$ref)
				continue;	/* components.responses: below */
			for (const [type, mt] of Object.entries(r.content ?? {}))
				yield { where: `${where} ${status} ${type}`, mt };
		}
	}
	for (const [name, r] of Object.entries(doc.components?.responses ?? {}))
		for (const [type, mt] of Object.entries(r.content ?? {}))
			yield { where: `components.responses.${name} ${type}`, mt };
}

// Every Schema Object outside components.schemas, with where it is.
function* inlineSchemas(doc) {
	for (const { where, mt } of mediaTypes(doc))
		if (mt.schema)
			yield { where, schema: mt.schema };
	const params = (list, where) => (list ?? []).filter((p) => !p.$ref && p.schema)
	    .map((p) => ({ where: `${where} parameter ${p.name}`, schema: p.schema }));
	const headers = (h, where) => Object.entries(h ?? {}).filter(([, v]) => !v.$ref && v.schema)
	    .map(([n, v]) => ({ where: `${where} header ${n}`, schema: v.schema }));
	for (const [path, item] of Object.entries(doc.paths ?? {})) {
		yield* params(item.parameters, path);
		for (const m of METHODS) {
			if (!item[m])
				continue;
			const where = `${m.toUpperCase()} ${path}`;
			yield* params(item[m].parameters, where);
			for (const [status, r] of Object.entries(item[m].responses ?? {}))
				yield* headers(r.headers, `${where} ${status}`);
		}
	}
	const c = doc.components ?? {};
	yield* params(Object.values(c.parameters ?? {}), "components.parameters");
	yield* headers(c.headers, "components.headers");
	for (const [name, r] of Object.entries(c.responses ?? {}))
		yield* headers(r.headers, `components.responses.${name}`);
}

const COMPONENTS_ID = "urn:libfinance:openapi:components";

// The schema with its "#/components/schemas/X" references pointed at the
// copy of components.schemas that Ajv knows as COMPONENTS_ID.
function rewriteRefs(v) {
	if (Array.isArray(v))
		return v.map(rewriteRefs);
	if (v && typeof v === "object") {
		const out = {};
		for (const [k, x] of Object.entries(v))
			out[k] = k === "$ref" && typeof x === "string" &&
			    x.startsWith("#/components/schemas/") ?
			    `${COMPONENTS_ID}#/$defs/${x.slice("#/components/schemas/".length)}` :
			    rewriteRefs(x);
		return out;
	}
	return v;
}

function ajvFor(doc) {
	const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
	addFormats(ajv);
	// The OpenAPI 3.1 dialect's own keywords: annotations, nothing to check.
	ajv.addVocabulary(["example", "discriminator", "xml", "externalDocs"]);
	ajv.addSchema({ $id: COMPONENTS_ID, $defs: rewriteRefs(doc.components?.schemas ?? {}) });
	return ajv;
}

const fmt = (errors) => (errors ?? []).map((e) =>
    `${e.instancePath || "(top)"} ${e.message}`).join("; ");

async function validate() {
	load();		/* the validator says only "Failed to parse" */
	const v = new Validator();
	const res = await v.validate(file);
	if (!res.valid) {
		const errs = Array.isArray(res.errors) ? res.errors : [res.errors];
		for (const e of errs)
			problem(typeof e === "string" ? e : JSON.stringify(e));
	} else if (v.version !== "3.1")
		problem(`the document is OpenAPI ${v.specificationVersion}, not 3.1`);
}

function schemas() {
	const doc = load();
	let ajv;
	try {
		ajv = ajvFor(doc);
		for (const name of Object.keys(doc.components?.schemas ?? {}))
			try {
				ajv.getSchema(`${COMPONENTS_ID}#/$defs/${name}`);
			} catch (e) {
				problem(`components.schemas.${name}: ${e.message}`);
			}
	} catch (e) {
		problem(`components.schemas: ${e.message}`);
		return;
	}
	for (const { where, schema } of inlineSchemas(doc))
		try {
			ajv.compile(rewriteRefs(schema));
		} catch (e) {
			problem(`${where}: ${e.message}`);
		}
}

function examples() {
	const doc = load();
	const ajv = ajvFor(doc);
	let n = 0;
	for (const { where, mt } of mediaTypes(doc)) {
		const list = [];
		if ("example" in mt)
			list.push(["example", mt.example]);
		for (const [k, ex] of Object.entries(mt.examples ?? {}))
			if (!ex.$ref && "value" in ex)
				list.push([`examples.${k}`, ex.value]);
		if (list.length === 0)
			continue;
		if (!mt.schema) {
			problem(`${where}: an example but no schema`);
			continue;
		}
		let validateFn;
		try {
			validateFn = ajv.compile(rewriteRefs(mt.schema));
		} catch (e) {
			problem(`${where}: ${e.message} (the examples are not checked)`);
			continue;
		}
		for (const [name, value] of list) {
			n++;
			if (!validateFn(value))
				problem(`${where} ${name}: ${fmt(validateFn.errors)}`);
		}
	}
	if (n === 0)
		problem("no examples found: the check checked nothing");
	else
		console.log(`# ${n} examples`);
}

function params() {
	const doc = load();
	const ids = new Map();
	for (const [path, item] of Object.entries(doc.paths ?? {})) {
		const templ = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
		for (const m of METHODS) {
			if (!item[m])
				continue;
			const op = item[m];
			const where = `${m.toUpperCase()} ${path}`;
			const declared = [...(item.parameters ?? []), ...(op.parameters ?? [])]
			    .map((p) => deref(doc, p)).filter((p) => p && p.in === "path");
			const names = [...new Set(declared.map((p) => p.name))].sort();
			if (names.join() !== templ.join())
				problem(`${where}: path parameters [${names}] but the template has [${templ}]`);
			for (const p of declared)
				if (p.required !== true)
					problem(`${where}: path parameter ${p.name} is not required: true`);
			if (!op.operationId)
				problem(`${where}: no operationId`);
			else if (ids.has(op.operationId))
				problem(`${where}: operationId ${op.operationId} is also ${ids.get(op.operationId)}'s`);
			else
				ids.set(op.operationId, where);
		}
	}
}

function serverPath(servers) {
	const url = servers?.[0]?.url;
	if (typeof url !== "string")
		return "";
	return new URL(url, "http://localhost").pathname.replace(/\/+$/, "");
}

function dump() {
	const doc = load();
	const base = serverPath(doc.servers);
	for (const { path, item, method, op } of operations(doc)) {
		const full = (item.servers ? serverPath(item.servers) : base) + path;
		const M = method.toUpperCase();
		console.log(`op ${M} ${full}`);
		const sec = op.security ?? doc.security ?? [];
		const open = sec.length === 0 || sec.some((r) => Object.keys(r).length === 0);
		console.log(`auth ${M} ${full} ${open ? "none" : Object.keys(sec[0]).join("+")}`);
		console.log(`status ${M} ${full} ${Object.keys(op.responses ?? {}).sort().join(" ")}`);
		const body = deref(doc, op.requestBody);
		if (!body)
			continue;
		const media = Object.keys(body.content ?? {});
		const schema = deref(doc, body.content?.["application/json"]?.schema) ?? {};
		console.log(`body ${M} ${full} required=${body.required === true} ` +
		    `closed=${schema.additionalProperties === false} media=${media.join(",")}`);
		const req = new Set(schema.required ?? []);
		for (const [name, p0] of Object.entries(schema.properties ?? {})) {
			const p = deref(doc, p0) ?? {};
			const t = Array.isArray(p.type) ? p.type.join("+") : p.type ?? "-";
			const s = (x) => (x === undefined ? "-" : String(x));
			const lo = t === "integer" ? p.minimum : p.minLength;
			const hi = t === "integer" ? p.maximum : p.maxLength;
			const f = p.format ?? (p.pattern ? `pattern:${p.pattern}` : "-");
			console.log(`field ${M} ${full} ${name}|${t}|${req.has(name) ? 1 : 0}|${s(lo)}|${s(hi)}|${f}`);
		}
	}
}

const checks = { validate, schemas, examples, params, dump };
let failed = 0;
for (const check of wanted) {
	problems = [];
	if (!checks[check]) {
		console.error(`lint.mjs: unknown check ${check}`);
		exit(2);
	}
	// Each check starts from the file, as if alone.
	const out = [];
	const log = console.log;
	console.log = (s) => out.push(s);
	try {
		await checks[check]();
	} catch (e) {
		problem(`${check}: ${e.name === "YAMLParseError" ? e.message : e.stack ?? e}`);
	} finally {
		console.log = log;
	}
	console.log(`== ${check} ${problems.length ? "fail" : "pass"}`);
	for (const s of out)
		console.log(s);
	for (const p of problems)
		console.log(`# ${p}`);
	if (problems.length)
		failed++;
}
exit(failed ? 1 : 0);
