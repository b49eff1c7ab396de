"""Generic words of SOC English: words a note may use without the evidence containing them.

Everything else that looks like a name (a capitalised word, an identifier, a word that only the case's
evidence uses) is a concrete token that the cited evidence must contain (``tools.notes.grounding``).
The list is small on purpose: a word missing here makes the checker stricter, never looser.
"""

from __future__ import annotations

_FUNCTION = """
a an the this that these those it its it's he she his her him they them their there here we our you your i
and or but nor so yet if then than as at by for from in into of off on onto out over to up upon via with
within without about above after again against along among around before behind below beneath beside
between beyond during except inside near outside past since through throughout till toward towards under
until while per also only just not no yes all any both each every few many more most much other some such
same own very too can could may might must shall should will would do does did done doing be been being
is are was were am has have had having which who whom whose what when where why how whether because though
although however therefore thus once twice first second third later earlier soon next last new old another
one two three four five six seven eight nine ten eleven twelve hundred hundreds thousand thousands dozens
several further still already again roughly about approximately around likely probably possibly apparently
then afterwards shortly immediately subsequently quickly repeatedly quietly silently same similar different
"""

_SOC = """
account accounts user users host hosts machine machines server servers workstation workstations laptop
laptops endpoint endpoints device devices system systems computer computers domain domains controller
controllers network networks address addresses ip ips port ports protocol connection connections session
sessions logon logons login logins log logs sign signed sign-in sign-ins signin password passwords
credential credentials hash hashes file files folder folders directory directories path paths disk drive
drives share shares process processes parent child command commands line script scripts binary binaries
executable executables payload payloads dll library service services task tasks scheduled rule rules
event events alert alerts detection detections evidence activity activities attack attacks attacker
attackers adversary actor actors malware ransomware miner cryptominer backdoor implant beacon beacons
shell shells web webshell tool tools memory dump dumps registry key keys value values email emails mail
message messages mailbox inbox recipient recipients sender link links url urls page site website request
requests response query queries record records traffic data copy copies upload uploads download downloads
time times minute minutes second seconds hour hours day days date size bytes byte mb gb kb count number
total failure failures attempt attempts success successful failed unusual suspicious malicious benign
external internal remote local public private admin admins group groups
privilege privileges persistence execution discovery exfiltration lateral movement access escalation
credential-access defense evasion collection impact technique techniques tactic tactics protection
real-time realtime monitoring security policy policies analyst analysts team case cases incident
incidents investigation recommendation recommendations step steps next recovery backup backups shadow
volume encryption encrypted extension extensions note notes form forms lure fake phishing phish spam
tunnel tunnelling tunneling exfil removable media usb engineer employee employees departing resignation
look-alike lookalike hidden encoded obfuscated same-host
windows linux microsoft utc gmt rdp ssh smb dns http https tls ssl mfa txt vpn api pid ps cli exe os
sql edr siem soc ioc iocs ttp ttps mitre att&ck attck
"""

_VERBS = """
run runs ran running start starts started starting launch launches launched launching spawn spawns spawned
spawning execute executes executed executing create creates created creating write writes wrote written
writing read reads reading open opens opened opening connect connects connected connecting contact
contacts contacted reach reaches reached resolve resolves resolved resolving send sends sent sending
receive receives received receiving visit visits visited visiting post posts posted posting submit
submits submitted submitting use uses used using try tries tried trying access accessed accessing
modify modifies modified modifying change changes changed changing add adds added adding delete deletes
deleted deleting rename renames renamed renaming drop drops dropped dropping load loads loaded loading
install installs installed installing move moves moved moving copy copied copying steal stole stolen
dumped dumping appear appears appeared follow follows followed following precede preceded observe
observed observes show shows showed shown indicate indicates indicated suggest suggests suggested see
seen detect detected detects log logged logging fail fails pipe piped piping talk talked talking turn
turned switch switched wipe wiped hinder hindered guess guessed go went gone come came make made take
took taken get got give gave set sets lives live living point points land landed tunnel tunnelled
review reviewed investigate confirm confirmed check checked verify verified escalate escalated
recommend recommended consider determine collect collected preserve preserved monitor monitored
hunt hunted look looked cut belong belongs belonged named called known begins began begin ended
decode decoded decoding reimage rotate scan search notify interview isolate isolating isolation block
blocking quarantine disable disabling reset remove contain containing restore patch update inspect
analyse analyze retrieve pull identify validate document escalation triage
isolated quarantined blocked disabled removed contained
"""

COMMON: frozenset[str] = frozenset((_FUNCTION + _SOC + _VERBS).split())

# words after which the next word names an entity ("user bob", "host web-03", "account helpdesk_tmp")
_ENTITY_KEYWORDS = """
user users account accounts host hosts machine workstation server laptop rule task service
"""
ENTITY_KEYWORDS: frozenset[str] = frozenset(_ENTITY_KEYWORDS.split())
