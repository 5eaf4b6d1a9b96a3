package usp

import "paradrop/chute"

// Controller is a controller the agent trusts: where it takes
// notifications and whose it is. Its scope follows the tenants': the
// operator's controller sees and acts on every chute, a developer's only on
// that developer's, on the terms the API gives the developer.
type Controller struct {
	Topic string
	// Developer is the developer the controller acts for; "" the
	// operator.
	Developer string
}

// sees says whether c may see and act on a chute of owner.
func (c Controller) sees(owner chute.Owner) bool {
	return c.Developer == "" || chute.Owner(c.Developer) == owner
}

// actor is who the changes c asks for are recorded as made by, as the API
// records them.
func (c Controller) actor() chute.Actor {
	if c.Developer == "" {
		return "operator"
	}
	return chute.Actor("developer:" + c.Developer)
}
