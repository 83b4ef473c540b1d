"""Run the whole system on one machine: embedded servers and a process supervisor for ``sdr dev``."""
