package ovsdb

import (
	"context"
	"encoding/json"
	"fmt"
)

// Condition is a where-clause element [column, function, value]; function
// is one of "==", "!=", "<", "<=", ">", ">=", "includes", "excludes".
type Condition struct {
	Column   string
	Function string
	Value    any
}

// Eq is the common condition column == value.
func Eq(column string, value any) Condition { return Condition{column, "==", value} }

// MarshalJSON implements json.Marshaler.
func (c Condition) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{c.Column, c.Function, c.Value})
}

// Mutation is a mutate operation element [column, mutator, value]; mutator
// is one of "+=", "-=", "*=", "/=", "%=", "insert", "delete".
type Mutation struct {
	Column  string
	Mutator string
	Value   any
}

// MarshalJSON implements json.Marshaler.
func (m Mutation) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{m.Column, m.Mutator, m.Value})
}

// Operation is one operation of a transaction. Build it with Insert,
// Select, Update, Mutate, Delete, Wait or Comment, which fill in the
// members each op requires.
type Operation struct {
	op   string
	body map[string]any
}

// MarshalJSON implements json.Marshaler.
func (o Operation) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(o.body)+1)
	for k, v := range o.body {
		m[k] = v
	}
	m["op"] = o.op
	return json.Marshal(m)
}

// where keeps an empty clause as [] (meaning every row): the server
// requires the member and rejects null.
func where(conds []Condition) []Condition {
	if conds == nil {
		return []Condition{}
	}
	return conds
}

// Insert inserts row into table. If uuidName is not empty, later
// operations of the same transaction can refer to the new row as
// NamedUUID(uuidName).
func Insert(table string, row Row, uuidName string) Operation {
	body := map[string]any{"table": table, "row": nonNilRow(row)}
	if uuidName != "" {
		body["uuid-name"] = uuidName
	}
	return Operation{"insert", body}
}

// Select returns the columns (all if none given) of the rows matching
// conds (all rows if conds is empty).
func Select(table string, conds []Condition, columns ...string) Operation {
	body := map[string]any{"table": table, "where": where(conds)}
	if columns != nil {
		body["columns"] = columns
	}
	return Operation{"select", body}
}

// Update sets the columns in row on every row matching conds.
func Update(table string, conds []Condition, row Row) Operation {
	return Operation{"update", map[string]any{"table": table, "where": where(conds), "row": nonNilRow(row)}}
}

// Mutate applies mutations to every row matching conds.
func Mutate(table string, conds []Condition, mutations ...Mutation) Operation {
	if mutations == nil {
		mutations = []Mutation{}
	}
	return Operation{"mutate", map[string]any{"table": table, "where": where(conds), "mutations": mutations}}
}

// Wait makes the transaction proceed only once the given columns of the
// rows matching conds are equal ("==") or not equal ("!=") to rows, or
// fail with a "timed out" *Error after timeoutMs milliseconds. A zero
// timeout turns it into an immediate check, the usual way to guard a
// read-modify-write against concurrent changes.
func Wait(table string, conds []Condition, columns []string, until string, rows []Row, timeoutMs int) Operation {
	if rows == nil {
		rows = []Row{}
	}
	if columns == nil {
		columns = []string{}
	}
	return Operation{"wait", map[string]any{
		"table": table, "where": where(conds), "columns": columns,
		"until": until, "rows": rows, "timeout": timeoutMs,
	}}
}

// Comment records text in the database log along with the transaction.
func Comment(text string) Operation {
	return Operation{"comment", map[string]any{"comment": text}}
}

func nonNilRow(r Row) Row {
	if r == nil {
		return Row{}
	}
	return r
}

// Result is the outcome of one successful operation: UUID for insert,
// Rows for select, Count for update, mutate and delete.
type Result struct {
	Count int
	UUID  UUID
	Rows  []Row
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *Result) UnmarshalJSON(b []byte) error {
	var raw struct {
		Count int             `json:"count"`
		UUID  json.RawMessage `json:"uuid"`
		Rows  []Row           `json:"rows"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*r = Result{Count: raw.Count, Rows: raw.Rows}
	if !isNull(raw.UUID) {
		var v any
		if err := decodeJSON(raw.UUID, &v); err != nil {
			return err
		}
		a, err := decodeAtom(v)
		if err != nil {
			return err
		}
		u, ok := a.(UUID)
		if !ok {
			return fmt.Errorf("insert result uuid is %T", a)
		}
		r.UUID = u
	}
	return nil
}

// Transact runs ops atomically on database db. If any operation fails, or
// the commit does, nothing is changed and the error is an *Error naming the
// failed operation; otherwise there is one Result per operation.
func (c *Client) Transact(ctx context.Context, db string, ops ...Operation) ([]Result, error) {
	params := make([]any, 0, len(ops)+1)
	params = append(params, db)
	for _, op := range ops {
		params = append(params, op)
	}
	var raw []json.RawMessage
	if err := c.call(ctx, "transact", params, &raw, nil); err != nil {
		return nil, err
	}
	// Errors come first: a failed operation is followed by nulls, and a
	// failed commit adds an element after the last operation.
	for i, r := range raw {
		if isNull(r) {
			continue
		}
		var probe struct {
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(r, &probe); err == nil && !isNull(probe.Error) {
			e := parseError(r, i)
			if i < len(ops) {
				e.OpName = ops[i].op
			}
			return nil, e
		}
	}
	if len(raw) < len(ops) {
		return nil, fmt.Errorf("ovsdb: transact: %d results for %d operations", len(raw), len(ops))
	}
	results := make([]Result, len(ops))
	for i := range ops {
		if err := json.Unmarshal(raw[i], &results[i]); err != nil {
			return nil, fmt.Errorf("ovsdb: transact: result %d (%s): %w", i, ops[i].op, err)
		}
	}
	return results, nil
}
