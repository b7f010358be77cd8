"""Header rows of further exporters (Thunderbird, Apple Contacts) and header spellings shared by
all foreign formats; formats.py turns them into ``Format`` objects.

Sources: Thunderbird writes the address-book field names of its import/export string table
(``importMsgs.properties``, keys 2100-2136, English and German); Apple's Contacts app exports
only vCards, CSV files from Mac export tools name their columns after the Contacts labels
("<label> Phone", German "<Label> Telefon").
"""

from __future__ import annotations

# --- Thunderbird ------------------------------------------------------------------------------
# English, in export order; "Screen Name" came with Thunderbird 3 (chat name).
THUNDERBIRD_EN_FIELDS = {
    "First Name": "given_name", "Last Name": "surname", "Display Name": "display_name",
    "Job Title": "job_title", "Department": "department", "Organization": "company",
}
THUNDERBIRD_EN_PHONES = {
    "Work Phone": "business", "Home Phone": "home", "Fax Number": "business_fax",
    "Pager Number": "pager", "Mobile Number": "mobile",
}
THUNDERBIRD_EN_EMAILS = ("Primary Email", "Secondary Email")
THUNDERBIRD_EN_OTHER = """Nickname,Screen Name,Home Address,Home Address 2,Home City,Home State,
Home ZipCode,Home Country,Work Address,Work Address 2,Work City,Work State,Work ZipCode,
Work Country,Web Page 1,Web Page 2,Birth Year,Birth Month,Birth Day,Custom 1,Custom 2,Custom 3,
Custom 4,Notes"""
THUNDERBIRD_DE_FIELDS = {
    "Vorname": "given_name", "Nachname": "surname", "Anzeigename": "display_name",
    "Arbeitstitel": "job_title", "Abteilung": "department", "Organisation": "company",
}
THUNDERBIRD_DE_PHONES = {
    "Tel. dienstlich": "business", "Tel. privat": "home", "Fax-Nummer": "business_fax",
    "Pager-Nummer": "pager", "Mobil-Tel.-Nr.": "mobile",
}
THUNDERBIRD_DE_EMAILS = ("Primäre E-Mail-Adresse", "Sekundäre E-Mail-Adresse")
THUNDERBIRD_DE_OTHER = """Spitzname,Chat-Name,Privat: Adresse,Privat: Adresse 2,Privat: Ort,
Privat: Bundesland,Privat: PLZ,Privat: Land,Dienstlich: Adresse,Dienstlich: Adresse 2,
Dienstlich: Ort,Dienstlich: Bundesland,Dienstlich: PLZ,Dienstlich: Land,Webseite 1,Webseite 2,
Geburtsjahr,Geburtsmonat,Geburtstag,Benutzerdef. 1,Benutzerdef. 2,Benutzerdef. 3,
Benutzerdef. 4,Notizen"""

# --- Apple Contacts ---------------------------------------------------------------------------
APPLE_EN_FIELDS = {
    "First Name": "given_name", "Middle Name": "middle", "Last Name": "surname",
    "Suffix": "suffix", "Organization": "company", "Company": "company",
    "Department": "department", "Job Title": "job_title",
}
# Contacts' phone labels (English UI) -> our number types.
APPLE_EN_LABELS = {
    "Mobile": "mobile", "iPhone": "mobile", "Home": "home", "Work": "business",
    "Main": "primary", "Home Fax": "home_fax", "Work Fax": "business_fax",
    "Other Fax": "other_fax", "Pager": "pager", "Other": "other", "School": "other",
}
APPLE_EN_OTHER = """Prefix,Nickname,Maiden Name,Phonetic First Name,Phonetic Middle Name,
Phonetic Last Name,Birthday,Note,Home Email,Work Email,Other Email,iCloud Email,Home Street,
Home City,Home State,Home ZIP,Home Country,Work Street,Work City,Work State,Work ZIP,
Work Country,Home Page,Work Page,Homepage,URL"""
APPLE_DE_FIELDS = {
    "Vorname": "given_name", "Zweiter Vorname": "middle", "Nachname": "surname",
    "Namenssuffix": "suffix", "Firma": "company", "Abteilung": "department",
    "Berufsbezeichnung": "job_title",
}
APPLE_DE_LABELS = {
    "Mobil": "mobile", "iPhone": "mobile", "Privat": "home", "Arbeit": "business",
    "Haupttelefon": "primary", "Hauptnummer": "primary", "Fax privat": "home_fax",
    "Fax Arbeit": "business_fax", "Fax geschäftlich": "business_fax",
    "Weiteres Fax": "other_fax", "Pager": "pager", "Andere": "other", "Sonstige": "other",
    "Schule": "other",
}
APPLE_DE_OTHER = """Namenspräfix,Spitzname,Mädchenname,Vorname phonetisch,
Nachname phonetisch,Geburtstag,Notiz,Privat E-Mail,Arbeit E-Mail,Andere E-Mail,
iCloud E-Mail,Privat Straße,Privat Ort,Privat Bundesland,Privat PLZ,Privat Land,
Arbeit Straße,Arbeit Ort,Arbeit Bundesland,Arbeit PLZ,Arbeit Land,Homepage,URL"""
APPLE_EN_EMAILS = ("Home Email", "Work Email", "Other Email", "iCloud Email", "Email")
APPLE_DE_EMAILS = ("Privat E-Mail", "Arbeit E-Mail", "Andere E-Mail", "iCloud E-Mail",
                   "E-Mail")


def apple_phones(labels: dict[str, str], word: str) -> dict[str, str]:
    """"<label> Phone" / "<Label> Telefon" columns (also "Phone (<label>)" spellings fold onto
    these through the loose header match)."""
    return {f"{label} {word}": kind for label, kind in labels.items()}


# --- Outlook spellings of other versions ------------------------------------------------------
# German desktop Outlook 2013 and later: home numbers in brackets, business as before; the
# brackets and word order of every other spelling ("Telefon (geschäftlich)",
# "Telefon 2 (privat)") fold onto these through the loose header match.
OUTLOOK_DE_2013_PHONES = {"Telefon (privat)": "home", "Telefon (privat 2)": "home2"}
OUTLOOK_DE_2013_OTHER = """Assistent(in),Name des/r Vorgesetzten,Partner/in,
Internet Frei/Gebucht,Sozialversicherungsnr.,Vorname Yomi,Nachname Yomi,Firma Yomi"""

# A column with the whole name, under the names exporters give it: a person's name, so it is
# the display name (and wins over the company).
DISPLAY_NAME_HEADERS = ("Name", "Full Name", "Display Name", "Anzeigename",
                        "Vollständiger Name", "Voller Name")
