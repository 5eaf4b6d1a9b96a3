package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"paradrop/usp/codec"
)

// Gateway is what the controller knows of one gateway's agent.
type Gateway struct {
	ID       string    `json:"id"`
	Topic    string    `json:"topic"`
	LastSeen time.Time `json:"last_seen"`
	// Online: the agent answered the last probe.
	Online  bool     `json:"online"`
	Version string   `json:"version,omitempty"` // Device.DeviceInfo.SoftwareVersion
	Chutes  []Chute  `json:"chutes,omitempty"`
	Labels  []string `json:"labels,omitempty"`
	Error   string   `json:"error,omitempty"` // why the last probe failed
}

// Chute is a DeploymentUnit a gateway reports.
type Chute struct {
	Instance string `json:"instance"` // Device.SoftwareModules.DeploymentUnit.{i}.
	Name     string `json:"name"`
	Version  string `json:"version"`
	Status   string `json:"status"`
}

const (
	duTable       = "Device.SoftwareModules.DeploymentUnit."
	softwareVer   = "Device.DeviceInfo.SoftwareVersion"
	installDU     = "Device.SoftwareModules.InstallDU()"
	execEnvRef    = "Device.SoftwareModules.ExecEnv.1"
	subscriptions = "Device.LocalAgent.Subscription."
	// argForce lets DeploymentUnit.{i}.Update() go back to an older
	// version (paradrop's agent's vendor extension).
	argForce = "X_ParaDrop_Force"
)

// Probe asks a gateway its software version and chutes.
func (c *Controller) Probe(ctx context.Context, gw string) (Gateway, error) {
	g := Gateway{ID: gw, Topic: c.Agents()[gw]}
	resp, err := c.Request(ctx, gw, codec.Header_GET, &codec.Request{ReqType: &codec.Request_Get{Get: &codec.Get{
		ParamPaths: []string{softwareVer, duTable + "*."},
	}}})
	if err != nil {
		return g, err
	}
	for _, r := range resp.GetGetResp().GetReqPathResults() {
		if r.ErrCode != 0 && r.RequestedPath == softwareVer {
			return g, &USPError{r.ErrCode, r.ErrMsg}
		}
		for _, res := range r.ResolvedPathResults {
			switch {
			case r.RequestedPath == softwareVer:
				g.Version = res.ResultParams["SoftwareVersion"]
			case strings.HasPrefix(res.ResolvedPath, duTable):
				p := res.ResultParams
				g.Chutes = append(g.Chutes, Chute{Instance: res.ResolvedPath, Name: p["Name"], Version: p["Version"], Status: p["Status"]})
			}
		}
	}
	sort.Slice(g.Chutes, func(i, j int) bool { return g.Chutes[i].Name < g.Chutes[j].Name })
	g.Online, g.LastSeen = true, time.Now().UTC()
	return g, nil
}

// USPInstaller installs chute packages on gateways with TR-369's
// software module management: InstallDU() for a chute the gateway does
// not run, DeploymentUnit.{i}.Update() for one it does, and
// DeploymentUnit.{i}.Uninstall(); each ends with OperationComplete.
type USPInstaller struct {
	C *Controller
	// URL is where gateways download a package (its signature is at URL
	// + ".minisig"): the controller serving it may change on a takeover.
	URL func(Package) (string, error)
	// Previous finds the package of an earlier version, for a rollback.
	Previous func(name, version string) (Package, bool)

	mu         sync.Mutex
	subscribed map[string]bool
	found      map[string]Chute // by gateway: the DU Current found
}

// subscribe asks a gateway, once, for the OperationComplete notifications
// of its software modules (TR-369 sends a notification only to a
// subscriber). A refusal is logged, not fatal: the subscription may
// exist already, made by this controller before. It is Persistent, so
// that a gateway restarted keeps it (not required: an agent that keeps
// none still subscribes).
func (u *USPInstaller) subscribe(ctx context.Context, gw string) {
	u.mu.Lock()
	done := u.subscribed[gw]
	if u.subscribed == nil {
		u.subscribed = map[string]bool{}
	}
	u.subscribed[gw] = true
	u.mu.Unlock()
	if done {
		return
	}
	set := func(k, v string) *codec.Add_CreateParamSetting {
		return &codec.Add_CreateParamSetting{Param: k, Value: v, Required: true}
	}
	_, err := u.C.Request(ctx, gw, codec.Header_ADD, &codec.Request{ReqType: &codec.Request_Add{Add: &codec.Add{
		CreateObjs: []*codec.Add_CreateObject{{ObjPath: subscriptions, ParamSettings: []*codec.Add_CreateParamSetting{
			set("ID", "paradrop-fleet-"+u.C.id), set("Enable", "true"), set("NotifType", "OperationComplete"),
			set("ReferenceList", "Device.SoftwareModules."), {Param: "Persistent", Value: "true"},
		}}},
	}}})
	if err != nil {
		u.C.logf("fleet: %s: subscribe to OperationComplete: %v", gw, err)
	}
}

// du finds the gateway's DeploymentUnit of a chute: its instance path,
// or "" when it runs none.
func (u *USPInstaller) du(ctx context.Context, gw, chute string) (Chute, error) {
	g, err := u.C.Probe(ctx, gw)
	if err != nil {
		return Chute{}, err
	}
	for _, c := range g.Chutes {
		if c.Name == chute {
			return c, nil
		}
	}
	return Chute{}, nil
}

// Current implements Installer. The DU found is kept for the Install
// that follows, which then need not ask again.
func (u *USPInstaller) Current(ctx context.Context, gw, chute string) (string, error) {
	c, err := u.du(ctx, gw, chute)
	if err == nil {
		u.mu.Lock()
		if u.found == nil {
			u.found = map[string]Chute{}
		}
		c.Name = chute
		u.found[gw] = c
		u.mu.Unlock()
	}
	return c.Version, err
}

// Install implements Installer.
func (u *USPInstaller) Install(ctx context.Context, gw string, pkg Package) error {
	url, err := u.URL(pkg)
	if err != nil {
		return err
	}
	u.mu.Lock()
	c, ok := u.found[gw]
	delete(u.found, gw)
	u.mu.Unlock()
	if !ok || c.Name != pkg.Name {
		if c, err = u.du(ctx, gw, pkg.Name); err != nil {
			return err
		}
	}
	return u.put(ctx, gw, c, url, false)
}

// put installs or updates a chute from url; c is its DU, if any. A
// rollback updates with force: the version it goes back to is older.
func (u *USPInstaller) put(ctx context.Context, gw string, c Chute, url string, rollback bool) error {
	var err error
	u.subscribe(ctx, gw)
	if c.Instance == "" {
		_, err = u.C.Operate(ctx, gw, installDU, map[string]string{"URL": url, "ExecutionEnvRef": execEnvRef})
	} else {
		args := map[string]string{"URL": url}
		if rollback {
			args[argForce] = "true"
		}
		_, err = u.C.Operate(ctx, gw, c.Instance+"Update()", args)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", gw, err)
	}
	return nil
}

// Rollback implements Installer.
func (u *USPInstaller) Rollback(ctx context.Context, gw string, pkg Package, prev string) error {
	u.mu.Lock()
	delete(u.found, gw) // what the gateway runs now is asked again
	u.mu.Unlock()
	if prev != "" {
		old, ok := u.Previous(pkg.Name, prev)
		if !ok {
			return fmt.Errorf("%s: no package of %s %s to roll back to", gw, pkg.Name, prev)
		}
		url, err := u.URL(old)
		if err != nil {
			return err
		}
		c, err := u.du(ctx, gw, pkg.Name)
		if err != nil || c.Version == prev {
			return err // a gateway that refused the new version runs prev still
		}
		return u.put(ctx, gw, c, url, true)
	}
	c, err := u.du(ctx, gw, pkg.Name)
	if err != nil || c.Instance == "" {
		return err
	}
	u.subscribe(ctx, gw)
	if _, err := u.C.Operate(ctx, gw, c.Instance+"Uninstall()", nil); err != nil {
		return fmt.Errorf("%s: %w", gw, err)
	}
	return nil
}
