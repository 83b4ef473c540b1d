"""The README stays true: its quick start is what CI runs, and it documents every setting."""

from __future__ import annotations

import importlib
import re

import pytest
from pydantic_settings import BaseSettings

from tests.conftest import ROOT

SETTINGS_CLASSES = [
    "libs.settings:CommonSettings",
    "libs.dev.settings:DevSettings",
    "gateway.settings:GatewaySettings",
    "services.auth.settings:AuthSettings",
    "services.brand.settings:BrandSettings",
    "services.campaign.settings:CampaignSettings",
    "services.campaign.inbound.settings:InboundSettings",
    "services.campaign.mailbox.settings:MailSettings",
    "services.worker.settings:WorkerSettings",
    "libs.deliverability.sending_domain:DnsSettings",
    "libs.replies.classify:ClassifierSettings",
]
INTERNAL = {"SDR_SERVICE_NAME"}  # set by each process itself, not by operators


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def _quick_start() -> list[str]:
    block = re.search(r"```[a-z]*\n(.*?)```", _readme(), re.S)
    assert block is not None
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    commands = _quick_start()
    assert commands == ["./tidewater up", "./tidewater test"]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("target", SETTINGS_CLASSES)
def test_every_setting_is_documented(target: str) -> None:
    module, name = target.split(":")
    cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
    prefix = cls.model_config.get("env_prefix", "")
    documented = _readme()
    missing = [
        f"{prefix}{field}".upper()
        for field in cls.model_fields
        if f"{prefix}{field}".upper() not in INTERNAL
        and not re.search(rf"\b{prefix.upper()}{field.upper()}\b|\b_{field.upper()}\b", documented)
    ]
    assert missing == [], f"README does not document {missing}"
