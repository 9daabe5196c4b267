"""The vulnerability register (docs/vulnerability-register.md).

    rules       severity, deadline and input checks bound to the policy in force
    facts       fixing releases, exposure and rollout read for a view
    views       read models (frozen dataclasses): show, list_vulnerabilities,
                reports_due, sla_report, vex_input
    art14       CRA Art. 14 report drafts (a read model)
    commands    use cases that change the register; each returns the record's ID
    imports     one file in one transaction, through the cve5, osv and cyclonedx readers
    cyclonedx   CycloneDX BOM/VEX in, CycloneDX VEX out

Views never import commands. Other areas use ``deadline`` (a release's due date) and
``triage`` (a campaign marking its fixes deployed), re-exported here.
"""

from patchgate.services.vulnerabilities.commands import triage
from patchgate.services.vulnerabilities.rules import UNASSIGNED, deadline

__all__ = ["UNASSIGNED", "deadline", "triage"]
