"""pvesim: the simulated Proxmox VE host used by the drswitch lab.

The shims in lab/shims (vzdump, qm, qmrestore, pct, pvesh), the HTTP API
server (lab/pve_api.py) and the supervisor (lab/lab.py) all share this
package, so every view of a host is built from the same real files under
the host root.
"""
