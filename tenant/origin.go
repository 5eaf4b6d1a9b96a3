package tenant

import (
	"fmt"

	"paradrop/chute"
	"paradrop/chute/signature"
)

// Signing is the operator's rule for package signatures: the keys trusted
// to sign, and whether a package must carry a valid signature by one.
type Signing struct {
	Keys     []signature.Key
	Required bool
}

// Origin is the terms a package sent by developer ("" the operator), as
// actor, is installed on: the operator's packages are checked against
// operator's keys and may ask for what the gateway allows; a developer's
// must be signed by one of its own keys (unless the operator allowed it
// unsigned) and may ask only for what the operator allowed it. Every front
// door (the API, the USP agent) takes its terms here; it adds the
// signature that came with the package to the Seal.
func (r *Registry) Origin(developer string, actor chute.Actor, operator Signing) (chute.Origin, error) {
	o := chute.Origin{Owner: chute.Owner(developer), Actor: actor,
		Seal: chute.Seal{Keys: operator.Keys, Required: operator.Required}}
	if developer == "" {
		return o, nil
	}
	d, err := r.Get(developer)
	if err != nil {
		return o, err
	}
	o.Seal = chute.Seal{Required: !d.Allow.Unsigned}
	for _, line := range d.Keys {
		k, err := signature.ParseKey(line)
		if err != nil {
			return o, fmt.Errorf("developer %s: key %q: %w", d.Name, line, err)
		}
		o.Seal.Keys = append(o.Seal.Keys, k)
	}
	o.Allow = &chute.Privileges{Devices: d.Allow.Devices, Capabilities: d.Allow.Capabilities, Follow: d.Allow.Follow}
	return o, nil
}
