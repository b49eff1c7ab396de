from socflow.enums import ObservableType as O
from socflow.observables import extract, extract_from_text, refang
from socflow.schemas import AlertIn


def test_refang_common_defanged_forms() -> None:
    assert refang("hxxps://evil[.]com/a") == "https://evil.com/a"
    assert refang("10.0.0[.]5") == "10.0.0.5"
    assert refang("bob[@]corp(.)com") == "bob@corp.com"


def test_text_extraction_skips_file_names_and_keeps_iocs() -> None:
    found = extract_from_text(
        "rundll32.exe comsvcs.dll MiniDump; contacted hxxp://bad[.]example[.]org/x from 192.168.1[.]20, "
        "sha256 " + "a" * 64 + " mail to Eve@Corp.com"
    )
    assert (O.url, "http://bad.example.org/x") in found
    assert (O.domain, "bad.example.org") in found
    assert (O.ip, "192.168.1.20") in found
    assert (O.hash, "a" * 64) in found
    assert (O.email, "eve@corp.com") in found
    assert not any(v.endswith((".exe", ".dll")) for _, v in found)


def test_entities_become_observables_and_bad_ips_are_dropped() -> None:
    alert = AlertIn.model_validate(
        {
            "source": "s",
            "title": "t",
            "severity": "low",
            "entities": {"hosts": ["WS1"], "ips": ["10.0.0.1", "999.1.1.1"], "users": ["alice", "alice"]},
        }
    )
    obs = extract(alert)
    assert (O.host, "WS1") in obs and (O.ip, "10.0.0.1") in obs
    assert (O.ip, "999.1.1.1") not in obs
    assert obs.count((O.user, "alice")) == 1
