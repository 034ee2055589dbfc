"""The demo's sample clients and the month they live through (deterministic, seeded)."""
from __future__ import annotations

import calendar
import random
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

FIRST = ["Ann", "Bo", "Carla", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kwame", "Lena", "Mateo",
         "Nadia", "Oscar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Ximena", "Yusuf",
         "Zoe", "Aiko", "Bruno", "Chloe", "Diego", "Emma", "Farah", "Gustav", "Hana", "Ivan", "Jade"]
LAST = ["Lee", "Chen", "Okafor", "Patel", "Schmidt", "Haddad", "Nakamura", "Rossi", "Kowalski", "Silva", "Dubois",
        "Andersen", "Murphy", "Novak", "Garcia", "Nguyen", "Ibrahim", "Larsen", "Moreau", "Tanaka", "Brennan",
        "Fischer", "Costa", "Walsh", "Ahmed", "Virtanen", "Kaur", "Jensen"]


@dataclass(frozen=True)
class Client:
    tenant_id: str
    name: str
    domain: str
    plan: dict
    contacts: tuple[str, ...]
    address: tuple[str, ...]
    locale: str
    skus: dict[str, int]            # part number -> prepaid units
    staff: int                      # users at the start of the month
    guests: int = 0
    service_accounts: int = 0
    legal: dict = field(default_factory=dict)  # legal_name, vat_id, company_id, postal_address, einvoice

    def onboarding(self) -> dict:
        return {"plan": self.plan, "billing_contacts": list(self.contacts), "address": list(self.address),
                "locale": self.locale, **self.legal}


CLIENTS = [
    Client("6c2b8f1e-3d4a-4e5f-8a9b-0c1d2e3f4a5b", "Contoso Dental", "contosodental.example",
           {"tenant_id": "6c2b8f1e-3d4a-4e5f-8a9b-0c1d2e3f4a5b", "name": "Contoso Dental", "currency": "USD",
            "timezone": "America/New_York", "proration": "daily", "per_user_price": "45.00",
            "sku_prices": {"O365_BUSINESS_PREMIUM": "22.00"}, "exclude_upn_patterns": ["svc-*"],
            "tax_rate": "0.0825"},
           ("accounts@contosodental.example",), ("Contoso Dental PLLC", "410 Elm Street", "Albany, NY 12203"), "en_US",
           {"O365_BUSINESS_PREMIUM": 12, "EXCHANGESTANDARD": 2}, staff=7, service_accounts=1,
           legal={"legal_name": "Contoso Dental PLLC", "postal_address": {
               "street": "410 Elm Street", "city": "Albany", "postcode": "12203", "country": "US"}}),
    Client("9d8e7f6a-5b4c-4d3e-9f2a-1b0c9d8e7f6a", "Fabrikam Logistics", "fabrikamlogistics.example",
           {"tenant_id": "9d8e7f6a-5b4c-4d3e-9f2a-1b0c9d8e7f6a", "name": "Fabrikam Logistics", "currency": "GBP",
            "timezone": "Europe/London", "proration": "daily", "per_user_price": "32.00",
            "sku_prices": {"SPB": "18.10", "ENTERPRISEPACK": "30.50"}, "require_license": True, "tax_rate": "0.20",
            "accounting": {"*": {"tax_type": "20% (VAT on Income)"}, "ENTERPRISEPACK": {"account_code": "210"}}},
           ("finance@fabrikamlogistics.example", "ops.manager@fabrikamlogistics.example"),
           ("Fabrikam Logistics Ltd", "Unit 7, Dockside Park", "Southampton SO14 3TJ"), "en_GB",
           {"SPB": 30, "ENTERPRISEPACK": 8, "POWER_BI_PRO": 5}, staff=22,
           legal={"legal_name": "Fabrikam Logistics Ltd", "vat_id": "GB 987 6543 21", "company_id": "04567890",
                  "postal_address": {"street": "Unit 7, Dockside Park", "city": "Southampton", "postcode": "SO14 3TJ",
                                     "country": "GB"}, "einvoice": True}),
    Client("2f4e6d8c-0b1a-4c3d-8e5f-7a9b1c3d5e7f", "Tailspin Studios", "tailspinstudios.example",
           {"tenant_id": "2f4e6d8c-0b1a-4c3d-8e5f-7a9b1c3d5e7f", "name": "Tailspin Studios", "currency": "AUD",
            "timezone": "Australia/Sydney", "proration": "none", "per_user_price": "60.00",
            "sku_prices": {"SPE_E5": "85.00", "SPB": "33.00"}, "include_guests": False, "tax_rate": "0.10"},
           ("ap@tailspinstudios.example",), ("Tailspin Studios Pty Ltd", "88 George Street", "Sydney NSW 2000"),
           "en_AU", {"SPE_E5": 6, "SPB": 10}, staff=11, guests=2,
           legal={"legal_name": "Tailspin Studios Pty Ltd", "company_id": "51824753556", "postal_address": {
               "street": "88 George Street", "city": "Sydney", "postcode": "2000", "country": "AU"}}),
    # A German client, invoiced wholly in German: names its tax, quotes its purchase order.
    Client("4a7e1c93-58b2-4f06-9d3e-b1c2d3e4f5a6", "Müller & Kolb Steuerberatung", "muellerkolb.example",
           {"tenant_id": "4a7e1c93-58b2-4f06-9d3e-b1c2d3e4f5a6", "name": "Müller & Kolb Steuerberatung",
            "currency": "EUR", "timezone": "Europe/Berlin", "proration": "daily", "per_user_price": "39.00",
            "sku_prices": {"SPB": "20.60", "Microsoft_365_Copilot": "28.10"}, "include_guests": True,
            "tax_rate": "0.19", "tax_label": "MwSt.", "purchase_order": "BE-2026-0117"},
           ("buchhaltung@muellerkolb.example",),
           ("Müller & Kolb Steuerberatung PartG mbB", "Friedrichstraße 123", "10117 Berlin"), "de_DE",
           {"SPB": 14, "Microsoft_365_Copilot": 3, "EXCHANGESTANDARD": 2}, staff=9, guests=1, service_accounts=1,
           legal={"legal_name": "Müller & Kolb Steuerberatung PartG mbB", "postal_address": {
               "street": "Friedrichstraße 123", "city": "Berlin", "postcode": "10117", "country": "DE"}}),
]


@dataclass(frozen=True)
class Event:
    at: datetime                     # UTC
    client: Client
    kind: str                        # join, leave, restore, license_add, license_remove, disable, enable
    person: str                      # display name (the simulator's user is found by name)
    sku: str | None = None
    upn: str | None = None


@dataclass
class Month:
    baseline: dict[str, list[tuple[str, str, list[str], str]]] = field(default_factory=dict)  # tenant -> people
    events: list[Event] = field(default_factory=list)


def _person(rnd: random.Random, taken: set[str]) -> str:
    while True:
        name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
        if name not in taken:
            taken.add(name)
            return name


def _upn(name: str, domain: str) -> str:
    first, last = name.lower().split(" ", 1)
    return f"{first}.{last.replace(' ', '')}@{domain}"


def plan_month(year: int, month: int, seed: int = 2026) -> Month:
    """Who each client has at the start, and what happens to them during the month."""
    rnd = random.Random(seed)
    result = Month()
    for client in CLIENTS:
        zone = ZoneInfo(client.plan["timezone"])
        taken: set[str] = set()
        skus = [s for s in client.skus if s in client.plan["sku_prices"]] or list(client.skus)
        people = []
        for _ in range(client.staff):
            name = _person(rnd, taken)
            people.append((name, _upn(name, client.domain), [rnd.choice(skus)], "Member"))
        unpriced = [s for s in client.skus if s not in client.plan["sku_prices"]]
        for n in range(client.service_accounts):  # a mailbox license on a service account: not billed per user
            people.append((f"Backup Service {n + 1}", f"svc-backup{n + 1}@{client.domain}", unpriced[:1], "Member"))
        for g in range(client.guests):  # a guest who was given a license: the reconciliation flags it
            name = _person(rnd, taken)
            people.append((name, f"{name.split()[0].lower()}_partner.example#EXT#@{client.domain}",
                           skus[:1] if g == 0 else [], "Guest"))
        result.baseline[client.tenant_id] = people
        staff = [p[0] for p in people if p[3] == "Member" and not p[1].startswith("svc-")]

        last_day = calendar.monthrange(year, month)[1]  # February has 28 or 29 days

        def local(day: int, hour: int) -> datetime:
            return datetime(year, month, min(day, last_day), hour, rnd.randint(0, 59),
                            tzinfo=zone).astimezone(ZoneInfo("UTC"))

        events = []
        for _ in range(max(2, client.staff // 4)):  # joiners
            name = _person(rnd, taken)
            events.append(Event(local(rnd.randint(2, 26), rnd.randint(8, 17)), client, "join", name,
                                sku=rnd.choice(skus), upn=_upn(name, client.domain)))
        leavers = rnd.sample(staff, max(1, client.staff // 6))
        for name in leavers:
            # every leaver leaves before the 29th (or the month's last day), when one is restored
            events.append(Event(local(min(rnd.randint(5, 28), last_day - 1), rnd.randint(9, 18)), client, "leave", name))
        restored = leavers[0]
        events.append(Event(local(29, 10), client, "restore", restored))
        for name in rnd.sample([s for s in staff if s not in leavers], 2):
            day = rnd.randint(3, 20)
            other = rnd.choice([s for s in client.skus])
            events.append(Event(local(day, 11), client, "license_add", name, sku=other))
            events.append(Event(local(day + rnd.randint(2, 8), 15), client, "license_remove", name, sku=other))
        disabled = rnd.choice([s for s in staff if s not in leavers])
        events.append(Event(local(rnd.randint(6, 12), 9), client, "disable", disabled))
        events.append(Event(local(rnd.randint(16, 24), 9), client, "enable", disabled))
        result.events.extend(events)
    result.events.sort(key=lambda e: e.at)
    return result
