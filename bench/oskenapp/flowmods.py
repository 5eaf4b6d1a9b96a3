"""The os-ken peer of the network suite's flow-mod rate (bench/network.go).

Each time a switch connects, this app sends FLOWMODS_N flow_mods (table 0,
priority 100, ip,nw_dst=198.18.X.Y/32 actions=output:1: the flows the
benchmark gives ovs-ofctl and paradrop's controller) and a barrier, and when
the barrier reply arrives appends one JSON line to the file FLOWMODS_OUT:
the wall time and this process's CPU time (user + system) from the
features reply to the barrier reply. The benchmark reconnects the switch
for every round, so the interpreter's start-up is paid once, outside the
timing.

Run: osken-manager --ofp-tcp-listen-port PORT bench/oskenapp/flowmods.py
"""

import json
import os
import resource
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class FlowMods(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.n = int(os.environ.get("FLOWMODS_N", "20000"))
        self.out = os.environ["FLOWMODS_OUT"]
        self.started = {}  # datapath id -> (wall, cpu) at the features reply

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self.started[dp.id] = (time.monotonic(), cpu_seconds())
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(1)])]
        for i in range(self.n):
            dst = "198.18.%d.%d" % (i >> 8, i & 0xFF)
            match = parser.OFPMatch(eth_type=0x0800, ipv4_dst=dst)
            dp.send_msg(parser.OFPFlowMod(dp, table_id=0, priority=100, match=match, instructions=inst))
        dp.send_msg(parser.OFPBarrierRequest(dp))

    # The barrier may be answered before os-ken moves the datapath on to
    # MAIN_DISPATCHER, so listen in both.
    @set_ev_cls(ofp_event.EventOFPBarrierReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def barrier(self, ev):
        wall0, cpu0 = self.started.pop(ev.msg.datapath.id, (None, None))
        if wall0 is None:
            return
        line = {"n": self.n, "wall_s": time.monotonic() - wall0, "cpu_s": cpu_seconds() - cpu0}
        with open(self.out, "a") as f:
            f.write(json.dumps(line) + "\n")
