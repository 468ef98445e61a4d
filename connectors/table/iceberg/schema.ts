// Iceberg schema helpers: the highest field id of a schema (for last-column-id), finding a
// column by its dotted name, and additive schema evolution (new columns get new ids above
// last-column-id; existing columns keep theirs).

import type { IcebergField, IcebergPrimitive, IcebergSchema, IcebergStructType, IcebergType } from './types.ts';

export class SchemaEvolutionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaEvolutionError';
  }
}

/** The highest field id in a type, nested ids (list elements, map keys and values) included. */
export function maxFieldId(type: IcebergType): number {
  if (typeof type === 'string') return 0;
  switch (type.type) {
    case 'struct': {
      let max = 0;
      for (const field of type.fields) max = Math.max(max, field.id, maxFieldId(field.type));
      return max;
    }
    case 'list':
      return Math.max(type['element-id'], maxFieldId(type.element));
    case 'map':
      return Math.max(type['key-id'], type['value-id'], maxFieldId(type.key), maxFieldId(type.value));
  }
}

/**
 * A primitive column by dotted name ("resource.service_name"), through structs only: partition
 * sources may not be inside lists or maps (table spec, "Partitioning").
 */
export function findPrimitiveColumn(schema: IcebergStructType, dottedName: string): { field: IcebergField; type: IcebergPrimitive } {
  const parts = dottedName.split('.');
  let struct: IcebergStructType = schema;
  for (let i = 0; i < parts.length; i++) {
    const field = struct.fields.find((f) => f.name === parts[i]);
    if (field === undefined) throw new Error(`no column ${dottedName} in the table schema`);
    if (i === parts.length - 1) {
      if (typeof field.type !== 'string') throw new Error(`column ${dottedName} is not of a primitive type`);
      return { field, type: field.type };
    }
    if (typeof field.type === 'string' || field.type.type !== 'struct') {
      throw new Error(`column ${dottedName}: ${parts.slice(0, i + 1).join('.')} is not a struct`);
    }
    struct = field.type;
  }
  throw new Error(`empty column name`);
}

/** The primitive type of a field id anywhere in the schema, or undefined. */
export function primitiveTypeOf(type: IcebergType, fieldId: number): IcebergPrimitive | undefined {
  if (typeof type === 'string') return undefined;
  switch (type.type) {
    case 'struct':
      for (const field of type.fields) {
        if (field.id === fieldId) return typeof field.type === 'string' ? field.type : undefined;
        const found = primitiveTypeOf(field.type, fieldId);
        if (found !== undefined) return found;
      }
      return undefined;
    case 'list':
      if (type['element-id'] === fieldId) return typeof type.element === 'string' ? type.element : undefined;
      return primitiveTypeOf(type.element, fieldId);
    case 'map':
      if (type['key-id'] === fieldId) return typeof type.key === 'string' ? type.key : undefined;
      if (type['value-id'] === fieldId) return typeof type.value === 'string' ? type.value : undefined;
      return primitiveTypeOf(type.key, fieldId) ?? primitiveTypeOf(type.value, fieldId);
  }
}

export interface EvolvedSchema {
  /** The merged struct (no schema-id set), or undefined when `desired` adds nothing. */
  fields: IcebergField[] | undefined;
  lastColumnId: number;
}

/**
 * Adds the columns of `desired` that `current` lacks (matched by name, recursively through
 * structs, list elements and map values), with new ids from lastColumnId + 1 in depth-first
 * order. Existing columns keep their ids and types; added columns are optional (a v2 table
 * cannot add a required column without a default). A type change of an existing column throws.
 */
export function addMissingColumns(current: IcebergStructType, desired: IcebergStructType, lastColumnId: number): EvolvedSchema {
  const ids = { next: lastColumnId + 1 };
  const merged = mergeStruct(current, desired, ids, '');
  return { fields: merged, lastColumnId: ids.next - 1 };
}

interface IdCounter { next: number }

function mergeStruct(current: IcebergStructType, desired: IcebergStructType, ids: IdCounter, path: string): IcebergField[] | undefined {
  let changed = false;
  const fields = current.fields.map((field) => {
    const wanted = desired.fields.find((f) => f.name === field.name);
    if (wanted === undefined) return field;
    const type = mergeType(field.type, wanted.type, ids, path + field.name);
    if (type === undefined) return field;
    changed = true;
    return { ...field, type };
  });
  for (const wanted of desired.fields) {
    if (current.fields.some((f) => f.name === wanted.name)) continue;
    fields.push({ ...withNewIds(wanted, ids), required: false });
    changed = true;
  }
  return changed ? fields : undefined;
}

/** The merged type when `desired` adds nested columns to `current`, else undefined. */
function mergeType(current: IcebergType, desired: IcebergType, ids: IdCounter, path: string): IcebergType | undefined {
  if (typeof current === 'string' || typeof desired === 'string') {
    if (current !== desired) throw new SchemaEvolutionError(`column ${path}: type ${describe(current)} cannot change to ${describe(desired)}`);
    return undefined;
  }
  if (current.type !== desired.type) {
    throw new SchemaEvolutionError(`column ${path}: type ${current.type} cannot change to ${desired.type}`);
  }
  if (current.type === 'struct' && desired.type === 'struct') {
    const fields = mergeStruct(current, desired, ids, path + '.');
    return fields === undefined ? undefined : { type: 'struct', fields };
  }
  if (current.type === 'list' && desired.type === 'list') {
    const element = mergeType(current.element, desired.element, ids, path + '.element');
    return element === undefined ? undefined : { ...current, element };
  }
  if (current.type === 'map' && desired.type === 'map') {
    mergeType(current.key, desired.key, ids, path + '.key');
    const value = mergeType(current.value, desired.value, ids, path + '.value');
    return value === undefined ? undefined : { ...current, value };
  }
  return undefined;
}

function withNewIds(field: IcebergField, ids: IdCounter): IcebergField {
  const id = ids.next++;
  return { ...field, id, type: typeWithNewIds(field.type, ids) };
}

function typeWithNewIds(type: IcebergType, ids: IdCounter): IcebergType {
  if (typeof type === 'string') return type;
  switch (type.type) {
    case 'struct':
      return { type: 'struct', fields: type.fields.map((f) => withNewIds(f, ids)) };
    case 'list': {
      const elementId = ids.next++;
      return { ...type, 'element-id': elementId, element: typeWithNewIds(type.element, ids) };
    }
    case 'map': {
      const keyId = ids.next++;
      const valueId = ids.next++;
      return { ...type, 'key-id': keyId, 'value-id': valueId, key: typeWithNewIds(type.key, ids), value: typeWithNewIds(type.value, ids) };
    }
  }
}

function describe(type: IcebergType): string {
  return typeof type === 'string' ? type : type.type;
}

/** Structural equality of two schemas' fields (ids, names, types, optionality). */
export function sameFields(a: IcebergStructType, b: IcebergStructType): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(type: IcebergType): unknown {
  if (typeof type === 'string') return type;
  switch (type.type) {
    case 'struct':
      return type.fields.map((f) => [f.id, f.name, f.required, canonical(f.type)]);
    case 'list':
      return ['list', type['element-id'], type['element-required'], canonical(type.element)];
    case 'map':
      return ['map', type['key-id'], type['value-id'], type['value-required'], canonical(type.key), canonical(type.value)];
  }
}

/** A schema with the given id, in the JSON form table metadata stores. */
export function withSchemaId(schema: IcebergStructType & { 'identifier-field-ids'?: number[] }, schemaId: number): IcebergSchema {
  const out: IcebergSchema = { type: 'struct', 'schema-id': schemaId, fields: schema.fields };
  if (schema['identifier-field-ids'] !== undefined) out['identifier-field-ids'] = schema['identifier-field-ids'];
  return out;
}
