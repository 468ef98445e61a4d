// Iceberg schemas in the JSON form of the table spec (format v2, "Appendix C: JSON
// serialization"), as table metadata files and schemas/tables/*.json hold them.

export type IcebergPrimitive =
  | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'date' | 'time'
  | 'timestamp' | 'timestamptz' | 'string' | 'uuid' | 'binary';

export interface IcebergField {
  id: number;
  name: string;
  required: boolean;
  type: IcebergType;
  doc?: string;
}

export interface IcebergStructType {
  type: 'struct';
  fields: IcebergField[];
}

export interface IcebergListType {
  type: 'list';
  'element-id': number;
  element: IcebergType;
  'element-required': boolean;
}

export interface IcebergMapType {
  type: 'map';
  'key-id': number;
  key: IcebergType;
  'value-id': number;
  value: IcebergType;
  'value-required': boolean;
}

export type IcebergType = IcebergPrimitive | IcebergStructType | IcebergListType | IcebergMapType;

export interface IcebergSchema extends IcebergStructType {
  'schema-id': number;
  'identifier-field-ids'?: number[];
}
