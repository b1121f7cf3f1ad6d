"""Starting and finding shoal processes on this machine: node processes
(``node_process``), the session files that remember them (``sessions``), a small
control-store client (``control_client``), and the ``shoal start|stop|status``
commands built on them (``commands``)."""
