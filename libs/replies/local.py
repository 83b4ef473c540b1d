"""The local classifier: no network, English and Spanish rules in priority order, dates and referrals read out.

It reads only what the person wrote (:func:`libs.replies.text.new_text` drops quoted history
and signatures), folds it (lower case, no accents) and tries the intents from the most binding
to the least: an unsubscribe request first, then machine replies (out of office before other
auto-replies), then someone else to talk to (referral before wrong person), deferrals, refusals
(sarcasm included), objections, meeting requests, questions and interest; nothing matched is
``other``. Each rule is a cue list per intent, so a new phrasing is one line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime

from libs import optout
from libs.replies.dates import Found, find_dates
from libs.replies.intents import Intent, Referral, ReplyClassification, ReplyFields
from libs.replies.text import fold, new_text

LOCAL_MODEL = "local-rules"
RULES_VERSION = "2026-12-03.1"
"""The audit's prompt version of a local decision: bump when a cue list or the priority order changes."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SPANISH = _words(
    "el la los las de que y en un una por para con no si es muy gracias hola buenos buenas dias tardes "
    "estoy estare nos nuestro nuestra usted ustedes su sus me mi pero mas esta este semana ahora"
)
_ENGLISH = _words(
    "the a an and to of in is it i we you our your for on with not this that be are thanks hi hello me "
    "my but at will can please would"
)

Cues = tuple[str, ...]

UNSUBSCRIBE: Cues = (
    r"\bunsubscribe\b|\bunsub\b",
    r"\b(?:dar|darme|darnos|dame|deme|den|denme|doy|me\s+doy|pido\s+la|solicito\s+la|quiero\s+la)\s+(?:de\s+)?baja\b",
    r"\bbaja\s+(?:de\s+(?:la|las|esta|este|estas|estos|sus|su|vuestra)|por\s+favor|inmediata)\b",
    r"^\s*baja\W*$",
    r"\b(?:quit|elimin|borr|sac|saqu)\w*(?:me|nos)\s+de\b",
    r"\bno\s+(?:me|nos)\s+(?:vuelva[ns]?\s+a\s+)?(?:escrib|contact|llam|mand|envi)\w*",
    r"\bno\s+quiero\s+recibir\b",
    r"\bno\s+(?:quiero|queremos|deseo|deseamos)\s+(?:que\s+(?:me|nos)\s+|seguir\s+)?"
    r"(?:recib|escrib|contact|llam|mand|envi)\w*",
    r"\b(?:don'?t|do\s+not|no\s+longer)\s+(?:want|wish)\s+to\s+(?:receive|get|hear|be\s+contacted)\b",
    r"\bdejen?\s+de\s+(?:escribir|enviar|mandar|llamar|contactar)\w*",
    r"\b(?:stop|quit)\s+(?:e-?mailing|writing|spamming|contacting|messaging)\b",
    r"\btake\s+(?:me|us|this\s+address)\s+off\b",
    r"\bremove\s+(?:me|us|this\s+(?:e-?mail|address))\b",
    r"\bdo\s+not\s+(?:e-?mail|write\s+to)\s+(?:me|us)\b",
    r"\bdon'?t\s+(?:e-?mail|write\s+to)\s+(?:me|us)\b",
    r"\bno\s+more\s+(?:e-?mails?|messages)\b",
    r"\bopt(?:ing)?[\s-]*(?:me\s+)?out\b",
    r"\bmark\w*\s+(?:this|you)\s+as\s+spam\b",
    r"\bstop\s+(?:this|these)\s+(?:e-?mails?|messages)\b",
)
OUT_OF_OFFICE: Cues = (
    r"\bout\s+of\s+(?:the\s+)?office\b",
    r"\booo\b",
    r"\bon\s+(?:annual|parental|maternity|paternity|sick|medical)\s+leave\b",
    r"\b(?:on|off\s+on)\s+(?:vacation|holiday|leave|pto)\b",
    r"\baway\s+from\s+(?:the\s+office|my\s+desk)\b",
    r"\b(?:limited|no)\s+access\s+to\s+(?:my\s+)?e-?mail\b",
    r"\bi\s*(?:'m|\s+am)\s+(?:currently\s+)?(?:away|travell?ing|out)\b.*\b(?:return|back)\b",
    r"\bi\s+will\s+be\s+(?:back|returning)\b",
    r"\b(?:away|out|off|offline|unavailable)\s+(?:until|till|through|thru)\b",
    r"\bat\s+(?:a|an|the)\s+(?:conference|offsite|event|trade\s+show|summit)\b|\bviaje\s+de\s+(?:trabajo|negocios)\b",
    r"\bregreso\s+el\b|\bausente\b",
    r"\bde\s+(?:licencia|permiso|baja\s+(?:medica|por))\b|\bno\s+estare\s+disponible\b",
    r"\b(?:away|travell?ing|out)\s+(?:at|on|for)\s+(?:a\s+)?(?:conference|trip|business|offsite|event|training)\b",
    r"\bback\s+in\s+the\s+office\b|\breturn(?:ing)?\s+to\s+the\s+office\b",
    r"\bi'?ll\s+be\s+back\s+(?:in\s+the\s+office|on)\b",
    r"\bfuera\s+de\s+(?:la\s+)?oficina\b",
    r"\b(?:estoy|estare|me\s+encuentro)\s+(?:de\s+)?(?:vacaciones|viaje|baja|ausente|fuera)\b",
    r"\bde\s+vacaciones\b",
    r"\bausente\s+(?:hasta|del)\b",
    r"\b(?:volvere|regresare|estare\s+de\s+vuelta|me\s+reincorporo|me\s+reincorporare)\b",
    r"\bacceso\s+limitado\s+al\s+correo\b",
)
AUTO_REPLY: Cues = (
    r"\bauto(?:matic|mated)?[\s-]*(?:reply|response|respuesta|message)\b",
    r"\bthis\s+is\s+an\s+automated\b",
    r"\bthis\s+(?:mailbox|inbox|address)\s+is\s+(?:not|no\s+longer)\s+monitored\b",
    r"\b(?:we|i)\s+(?:have\s+)?received\s+your\s+(?:e-?mail|message|request|inquiry)\b",
    r"\bthank\s+you\s+for\s+(?:your\s+(?:e-?mail|message)|contacting)\b.*\b(?:respond|get\s+back|within|shortly)\b",
    r"\b(?:ticket|case|request)\s+(?:#|number|no\.?)\s*\w+",
    r"\b(?:request|message|e-?mail|ticket|inquiry|enquiry)\b.{0,25}\bhas\s+been\s+(?:received|logged|created|opened)\b",
    r"\bdo\s+not\s+reply\s+to\s+this\b",
    r"\bno-?reply\b",
    r"\brespuesta\s+automatica\b",
    r"\bmensaje\s+automatico\b",
    r"\bhemos\s+recibido\s+su\s+(?:mensaje|correo|solicitud)\b",
    r"\b(?:le|te)\s+responderemos\b",
    r"\bno\s+responda\s+a\s+este\b",
    r"\bdelivery\s+(?:has\s+)?failed\b|\bundeliverable\b|\bmailer-daemon\b",
    r"\b(?:could\s+not|couldn'?t|was\s+not|wasn'?t|cannot)\s+be\s+delivered\b|\bmailbox\s+(?:is\s+)?full\b",
    r"\b(?:we|our\s+team)\s+(?:aim|try|strive|will\s+(?:try|endeavou?r))\s+to\s+(?:respond|reply|answer|get\s+back)\b",
    r"\bwill\s+(?:reply|respond|get\s+back)\s+(?:to\s+you\s+)?within\b|\bha\s+sido\s+registrad[oa]\b",
    r"\bin\s+(?:our|the)\s+queue\b|\bwill\s+be\s+(?:answered|handled|reviewed|processed)\b",
    r"\bno\s+(?:se\s+)?monitoriz\w+\b|\bno\s+se\s+(?:revisa|monitorea)\b",
    r"\bhas\s+been\s+received\b|\bha\s+sido\s+recibid[oa]\b|\bacuse\s+de\s+recibo\b",
    r"\b(?:le|te|les)\s+(?:contestaremos|responderemos|atenderemos)\b",
)
REFERRAL: Cues = (
    r"\b(?:reach\s+out\s+to|talk\s+to|speak\s+(?:to|with)|contact|get\s+in\s+touch\s+with|e-?mail|ping|try)\s+"
    r"(?:my\s+colleague|our|my|her|him|them|the)?\b",
    r"\b(?:the\s+)?(?:right|best|better)\s+(?:person|contact)\s+(?:is|would\s+be|for\s+this)\b",
    r"\b(?:the\s+one|the\s+person|who)\s+(?:to\s+(?:talk|speak)\s+(?:to|with)|you\s+(?:want|need)|to\s+ask)\b",
    r"\byou\s+(?:want|need|should\s+(?:ask|try|talk\s+to|contact|email))\b|\bdirect\s+(?:this|it|your)\b",
    r"\b(?:el|la)\s+(?:responsable|encargad[oa])\s+(?:es|de\s+\w+\s+es)\b|\bmejor\s+(?:escrib|habl|contact)\w*\b",
    r"\b(?:handles?|owns?|is\s+in\s+charge\s+of|looks\s+after|runs)\s+(?:this|that|our|vendor|purchasing|procurement)\b",
    r"\b(?:looping|loop|cc'?ing|copying|cc'?d|cc'?ed|forwarding|forwarded|passing\s+this|adding|added)\b",
    r"\b(?:hable|habla|hablen|contacte|contacta|escriba|escribale|escribele|escribe)\s+(?:con|a)\b",
    r"\b(?:la\s+persona|el\s+contacto)\s+(?:adecuad[ao]|indicad[ao]|correct[ao])\s+(?:es|seria)\b",
    r"\b(?:se\s+encarga|lleva\s+(?:este|esto|el\s+tema)|es\s+responsable)\b",
    r"\ben\s+copia\b|\bte\s+paso\s+(?:el\s+)?contacto\b|\ble\s+paso\s+(?:el\s+)?contacto\b|\breenvio\b",
)
WRONG_PERSON: Cues = (
    r"\bwrong\s+(?:person|guy|contact|number|address|department|team|inbox|email|mailbox|company)\b",
    r"\b(?:got|have|emailed|reached)\s+the\s+wrong\b|\bno\s+tengo\s+nada\s+que\s+ver\b|\bnothing\s+to\s+do\s+with\b",
    r"\bno\s+(?:estoy|soy)\s+(?:a\s+cargo|el\s+encargado|la\s+encargada)\b|\byo\s+no\s+soy\b|\bse\s+equivoc\w*\b",
    r"\bnot\s+the\s+(?:right|correct|best|appropriate)\s+(?:person|contact)\b",
    r"\bnot\s+the\s+(?:right|correct)\s+(?!time|moment|fit|now|solution|tool|product|way)[a-z]+\b",
    r"\bmust\s+be\s+a\s+mistake\b|\bby\s+mistake\b|\bi'?m\s+(?:just\s+)?(?:a|an)\s+(?:student|intern)\b",
    r"\bi\s+(?:don'?t|do\s+not)\s+(?:handle|deal\s+with|work\s+on|own|make)\b",
    r"\b(?:no\s+longer|not)\s+(?:with|at|work(?:ing)?\s+(?:at|for))\s+"
    r"(?!the\s+(?:moment|time|minute|end)|this\s+(?:time|point|stage)|all|present|first|least|once|any\b)\w+",
    r"\bleft\s+the\s+company\b|\bno\s+longer\s+works?\b|\bi'?m\s+no\s+longer\s+(?:at|with|here|there|in)\b",
    r"\bnot\s+(?:involved|responsible|in\s+charge|the\s+decision[\s-]?maker)\b",
    r"\b(?:confused|mistaken|mixed\s+up)\s+(?:me\s+)?with\s+someone\s+else\b|\b(?:want|looking\s+for|need|meant|mean|thinking\s+of)\s+someone\s+else\b",
    r"\b(?:haven'?t|have\s+not|don'?t|do\s+not|never)\s+work(?:ed)?\s+(?:there|here|at|for|in)\b|\bi'?m\s+retired\b",
    r"\bconfundid[oa]\s+de\s+(?:persona|contacto)\b|\bno\s+trabajo\s+(?:en|para|con)\b|\bjubilad[oa]\b",
    r"\bno\s+(?:puedo|podre)\s+ayudar\w*\b",
    r"\b(?:not|isn'?t|is\s+not)\s+my\s+(?:area|department|responsibility|call|job|role|remit|decision)\b",
    r"\bwho\s+is\s+this\b.*\b(?:don'?t\s+know|never)\b|\bnever\s+heard\s+of\b",
    r"\bno\s+soy\s+(?:la\s+persona|el\s+responsable|la\s+responsable|quien)\b",
    r"\b(?:numero|correo|persona)\s+equivocad[oa]\b",
    r"\bequivoc\w+\s+de\s+(?:persona|contacto|correo|empresa)\b|\bte\s+equivocaste\b",
    r"\bya\s+no\s+(?:trabaj\w+|estoy\s+en|formo\s+parte)\b|\bdeje\s+la\s+empresa\b|\bdejo\s+la\s+empresa\b",
    r"\bno\s+(?:me\s+)?(?:encargo|ocupo|llevo)\b",
)
NOT_NOW: Cues = (
    r"^\W*(?:after|not\s+(?:until|before)|despues\s+de)\b",
    r"\b(?:este|this)\s+(?:trimestre|quarter|mes|month|ano|year)\s+(?:imposible|no|impossible|is\s+out)\b"
    r"|\bmejor\s+(?:en|a\s+partir|despues|para)\b",
    r"\bnot\s+(?:right\s+)?now\b|\b(?:bad|poor|wrong)\s+timing\b|\btiming'?s?\s+(?:is\s+)?(?:off|bad|wrong)\b",
    r"\bnot\s+at\s+(?:the|this)\s+moment\b",
    r"\bnot\s+(?:a\s+priority|the\s+right\s+time|a\s+good\s+time)\b",
    r"\bnot\s+(?:this|until)\b.{0,20}\b(?:quarter|year|month|q[1-4]|spring|summer|fall|autumn|winter)\b",
    r"\b(?:maybe|perhaps|possibly)\s+(?:later|next|in|after|down\s+the\s+road)\b",
    r"\b(?:reach\s+out|check\s+back|circle\s+back|follow\s+up|ping\s+me|try\s+(?:me|us)|touch\s+base|"
    r"come\s+back|get\s+back\s+to\s+me|revisit|reconnect|write\s+(?:me\s+)?again)\b"
    r".{0,40}\b(?:in|after|next|again|later|around|early|mid|late|q[1-4]|on)\b",
    r"\b(?:again|back)\s+(?:in|after|next|around)\b",
    r"\b(?:later\s+(?:this|next)|down\s+the\s+road|further\s+down|some\s+time\s+next)\b",
    r"\b(?:busy|swamped|slammed|buried)\b.{0,60}\b(?:until|through|till|after|next)\b",
    r"\b(?:budget|planning|roadmap)\b.{0,40}\b(?:next|q[1-4]|new\s+year|opens|reopens|cycle)\b",
    r"\bahora\s+no\b|\bahora\s+mismo\s+no\b|\bde\s+momento\s+no\b|\bpor\s+ahora\s+no\b|\bno\s+es\s+(?:buen\s+)?momento\b",
    r"\bmas\s+adelante\b|\bmas\s+tarde\b|\bquizas?\s+(?:en|despues|mas)\b|\btal\s+vez\s+(?:en|despues|mas)\b",
    r"\b(?:vuelv\w+|escrib\w+|contact\w+|llam\w+|retom\w+)\s+(?:a\s+(?:escribir|contactar|llamar)\w*\s+)?"
    r"(?:\w+\s+){0,3}(?:en|despues|a\s+partir|el\s+proximo|la\s+proxima|dentro|hacia|para)\b",
    r"\bretomemos\b|\bretomamos\b|\bhablamos\s+(?:en|despues|a\s+partir)\b",
    r"\bno\s+(?:antes|hasta)\s+(?:de|del|el|que)\b|\bhasta\s+(?:el\s+)?(?:proximo|q[1-4]|despues|enero|la\s+vuelta)\b",
)
NOT_INTERESTED: Cues = (
    r"\bnot\s+(?:really\s+|at\s+all\s+)?interested\b",
    r"\bno\s+(?:thanks|thank\s+you|thx|interest)\b",
    r"\b(?:we'?re|we\s+are|i'?m|i\s+am)\s+(?:all\s+)?(?:set|good|covered|fine)\b(?!\s+(?:for|to|on)\s)",
    r"\bnot\s+(?:a\s+fit|for\s+us|something\s+we|relevant|needed)\b",
    r"\b(?:we\s+)?(?:don'?t|do\s+not)\s+need\b",
    r"\bno\s+need\b|\bnot\s+looking\b|\bpass\b|\bhard\s+pass\b|\bno\s+way\b|\bnope\b|\bnah\b",
    r"\b(?:going\s+to|will|we'?ll|i'?ll|must|have\s+to|respectfully)\s+decline\b|\bno\s+lo\s+vemos\b",
    r"\bplease\s+don'?t\s+follow\s+up\b|\bwe'?ll\s+pass\b",
    r"\bno\s+(?:me|nos)\s+interesa\b|\bno\s+estamos\s+interesad\w+\b|\bno\s+estoy\s+interesad\w+\b",
    r"\bno,?\s+gracias\b|\bno\s+necesitamos\b|\bno\s+nos\s+hace\s+falta\b|\bno\s+buscamos\b",
    r"\bpaso\b|\bpasamos\b|\b(?:vamos|voy)\s+a\s+pasar\b|\bestamos\s+bien\s+(?:asi|servidos)\b",
    # sarcasm: praise words around yet another pitch
    r"\b(?:oh\s+)?(?:great|wonderful|fantastic|perfect|lovely|awesome)[,.!]*\s+(?:another|more|yet\s+another)\b",
    r"\bjust\s+what\s+i\s+(?:needed|wanted)\b|\bexactly\s+what\s+my\s+inbox\s+needed\b",
    r"\byeah,?\s+right\b|\bsure,?\s+(?:because|right|jan)\b|\bcan'?t\s+wait\s+for\s+(?:more|another|the\s+next)\b",
    r"\b(?:que|justo\s+lo\s+que)\s+(?:bien|maravilla|ilusion|necesitaba)\b.{0,40}\b(?:otro|otra|mas)\b",
    r"\bjusto\s+lo\s+que\s+necesitaba\b|\bsi,?\s+claro\b|\bcomo\s+no\b.{0,30}\botro\b",
    r"\bno\s+molest\w+\b|\bno,?\s*$|\bnever\s+(?:pitch|sell|bother)\b|\bdon'?t\s+(?:pitch|bother)\b",
    r"\bnot\s+for\s+(?:us|me|now\s+or\s+ever)\b|\bno\s+es\s+para\s+(?:nosotros|mi)\b",
    r"\bno\s+(?:estamos\s+|estoy\s+)?buscando\b",
)
OBJECTION: Cues = (
    r"\b(?:seems?|looks?|sounds?|is|too|very|quite|really|way|pretty|bit)\s+(?:\w+\s+)?(?:expensive|pricey|costly|steep)\b",
    r"\b(?:a\s+lot\s+of|too\s+much|so\s+much|serious|real)\s+money\b|\bover\s*priced\b",
    r"\btoo\s+(?:expensive|pricey|costly|much|high)\b|\b(?:price|pricing|cost)\s+is\s+(?:too\s+)?(?:high|steep)\b",
    r"\bno\s+budget\b|\bdon'?t\s+have\s+(?:the\s+)?budget\b|\bcan'?t\s+afford\b",
    r"\balready\s+(?:use|using|have|having|work|working|on|with|pay|paying|signed|got|run|running|invested|built)\b",
    r"\b(?:locked|tied)\s+(?:in|into)\b|\bunder\s+contract\b|\bcontract\s+(?:with|runs|until)\b",
    r"\bhow\s+(?:is|are)\s+(?:this|you|it)\s+(?:any\s+)?different\b|\bwhy\s+(?:would|should)\s+we\s+switch\b",
    r"\b(?:tried|used|had|tested)\b.{0,40}\b(?:didn'?t|did\s+not|failed|never|wasn'?t|no\s+luck|burned)\b",
    r"\b(?:security|legal|it|compliance|procurement|infosec)\s+(?:team\s+|department\s+)?(?:would|will)\s+never\b"
    r"|\b(?:would|will)\s+never\s+(?:approve|allow|sign\s+off)\b|\bwon'?t\s+(?:approve|allow|sign\s+off)\b",
    r"\b(?:worried|concerned|concerns?|worry|nervous)\s+(?:about|with|re|that)\b",
    r"\b(?:gdpr|soc\s*2|security|privacy|compliance)\b.{0,30}\b(?:issue|problem|risk|blocker|nightmare|never)\b",
    r"\bnot\s+sure\s+(?:it|this|that|ai|you|your\s+\w+)\s+(?:would|will|adds?|works?|helps?|can|is\s+worth)\b",
    r"\bcan'?t\s+(?:spend|justify|afford)\b|\b(?:no|zero)\s+(?:spend|money)\s+(?:for|on)\b",
    r"\b(?:precio|coste|costo|tarifa)\s+(?:es\s+)?(?:demasiado|muy|bastante)\s+(?:alto|elevad[oa])\b",
    r"\bno\s+creo\s+que\s+(?:funcione|sirva|nos\s+sirva|valga)\b|\bya\s+lo\s+(?:intentamos|probamos)\b",
    r"\b(?:doesn'?t|does\s+not|won'?t|never)\s+work\s+(?:in|for)\b|\bbans?\b|\bbanned\b|\bprohib\w+\b",
    r"\bno\s+(?:confia|confiamos|creemos\s+en)\b|\b(?:don'?t|do\s+not)\s+trust\b",
    r"\bnon-?starter\b|\bdeal[\s-]?breaker\b|\bregulated\b|\bunderdeliver\w*\b|\bover-?promis\w*\b",
    r"\bya\s+(?:contratamos|compramos|firmamos)\b",
    r"\bburn(?:ed|t)\b|\bbad\s+experience\b|\bhappy\s+with\s+(?:our|what\s+we|the\s+current|the\s+one)\b",
    r"\b(?:current|existing)\s+(?:setup|vendor|provider|solution|tool|stack)\b|\bno\s+vemos\s+el\s+valor\b",
    r"\bdoesn'?t\s+(?:seem|sound)\s+(?:worth|like\s+a)\b|\bnot\s+convinced\b|\bskeptical\b",
    r"\bour\s+team\s+is\s+(?:too\s+)?small\b|\bwe\s+build\s+(?:it|this)\s+in-?house\b|\bin-?house\s+(?:tool|solution)\b",
    r"\bdemasiado\s+car[oa]\b|\bmuy\s+car[oa]\b|\bno\s+tenemos\s+presupuesto\b|\bsin\s+presupuesto\b",
    r"\bya\s+(?:usamos|tenemos|trabajamos\s+con|contamos\s+con|pagamos)\b",
    r"\ben\s+que\s+se\s+diferencia\b|\bque\s+(?:les\s+)?diferencia\b|\bpor\s+que\s+(?:cambiariamos|deberiamos\s+cambiar)\b",
    r"\bme\s+preocupa\b|\bnos\s+preocupa\b|\bno\s+(?:me|nos)\s+convence\b|\bcontrato\s+(?:con|hasta|vigente)\b",
    r"\blo\s+(?:probamos|intentamos)\b.{0,50}\bno\b",
)
MEETING: Cues = (
    r"\b(?:set\s+up|schedule|book|arrange|grab|hop\s+on|jump\s+on|have)\s+(?:a\s+)?(?:quick\s+|short\s+|brief\s+|"
    r"\d+[\s-]*min(?:ute)?\s+)?(?:call|meeting|chat|demo|time|zoom|teams|session)\b",
    r"\b(?:let'?s|can\s+we|could\s+we|shall\s+we|happy\s+to|glad\s+to|open\s+to|we\s+should)\s+"
    r"(?:talk|meet|chat|connect|speak|hop|jump|set|schedule|find)\b",
    r"\b(?:are|is)\s+(?:you|there)\s+(?:free|available)\b|\b(?:free|available)\s+(?:on|this|next|at|for)\b",
    r"\b(?:calendar|calendly|invite|invitation)\b|\bwhat\s+times?\s+works?\b|\bi'?ll\s+pick\s+(?:one|a\s+time)\b",
    r"\bsend\s+(?:me\s+|over\s+)?(?:a\s+few|some|your|two|three|a\s+couple\s+of)?\s*(?:times|slots|availability)\b",
    r"\bhow\s+about\s+(?:monday|tuesday|wednesday|thursday|friday|tomorrow|next|\d)",
    r"\b(?:call|ring|phone)\s+me\b|\bllam(?:ame|eme|adme)\b|\bmarcame\b",
    r"\b(?:works|work)\s+for\s+me\b|\b\d{1,2}(?::\d{2})?\s*(?:am|pm|h)\b",
    r"\b(?:grab|book|take|pick)\s+(?:a\s+)?(?:\d+\s*(?:min|mins|minutes)|slot|time)\b|\bcal\.com\b",
    r"\bdo\s+a\s+(?:call|meeting|zoom|demo)\b|\breun\w*monos\b|\bque\s+(?:dia|hora)\s+te\s+(?:viene|va)\b",
    r"\bdemo\b|\b(?:come|drop|swing)\s+by\b|\bvisit\s+(?:us|our)\b",
    r"\b(?:book|schedule|set\s+up|arrange|put)\s+(?:\w+\s+){0,3}(?:with|on|for)\s+(?:me|my|us|our|next|this|monday|"
    r"tuesday|wednesday|thursday|friday)\b",
    r"\b(?:vernos|reunirnos|juntarnos|quedar|verte|verle)\b",
    r"\bagend\w+\b|\b(?:agendar|agendemos|programar|programemos|organizar|coordinar|coordinemos|concretar|cuadrar)\b",
    r"\b(?:una\s+)?(?:llamada|reunion|videollamada|cita)\b",
    r"\b(?:hablamos|nos\s+vemos|quedamos|nos\s+reunimos|charlamos)\s+(?:el|este|la|manana|a\s+las|mañana)\b",
    r"\b(?:tienes|tiene|tienen)\s+(?:un\s+)?(?:hueco|tiempo|disponibilidad)\b|\bdisponible\s+(?:el|este|para)\b",
    r"\ba\s+las\s+\d{1,2}\b|\bme\s+viene\s+bien\b|\bmandame\s+(?:una\s+)?invitacion\b",
)
QUESTION: Cues = (
    r"\?",
    r"^(?:how|what|which|when|where|who|why)\b|^(?:does|do|is|are|can|could|would|will|should)\s+(?:you|it|this|your|we|i|the|there)\b",
    r"\b(?:wondering|curious)\s+(?:if|whether|how|what|about)\b|\bi'?d\s+like\s+to\s+know\b",
    r"\b(?:cuanto|cuantos|como|que|cual|cuales|donde|cuando|quien)\b.{0,80}\?",
    r"\b(?:me\s+gustaria|quisiera|queria|quiero)\s+saber\s+(?:si|como|cuanto|que|cual|cuando|donde|quien)\b"
    r"|\bqueria\s+preguntar\b",
)
INTERESTED: Cues = (
    r"\binterested\b|\binteresting\b|\bintrigued\b|\bcurious\b",
    r"\b(?:pretty|really|very|so|actually)\s+(?:cool|neat|nice|useful|interesting|relevant)\b|\bsend\s+(?:me\s+)?more\b",
    r"\b(?:this|that|it)\s+(?:is|looks|sounds|seems)\s+(?:really\s+)?(?:great|awesome|amazing|useful|helpful|cool)\b",
    r"\bpotentially\b|\bevaluating\s+(?:options|vendors|tools|solutions)\b|\bgood\s+timing\b",
    r"\bpodria\s+estar\s+bien\b|\becharle\s+un\s+vistazo\b",
    r"\byou\s+have\s+my\s+attention\b|\bopen\s+to\s+(?:a\s+)?(?:pilot|trial|conversation|chat)\b|\bwhat\s+we\s+need\b",
    r"\b(?:me|nos)\s+(?:puede|podria)\s+servir\b|\bsigue\s+contando\w*\b|\bme\s+encaja\b",
    r"\blove\s+(?:the|this|that)\s+idea\b|\bkeep\s+me\s+(?:posted|in\s+the\s+loop|updated)\b|\bi'?m\s+in\b",
    r"\btell\s+me\s+more\b|\b(?:send|share)\s+(?:me\s+|over\s+)?(?:more|some|the)?\s*(?:info|information|details|deck|"
    r"case\s+stud\w*|pricing|brochure|one-?pager)\b",
    r"\bsounds\s+(?:good|great|interesting|promising|useful)\b|\blooks\s+(?:good|great|interesting|promising)\b",
    r"\b(?:yes|yep|yeah|sure|absolutely|definitely|of\s+course)\b",
    r"\bi'?d\s+(?:love|like)\s+to\b|\bkeen\b|\bwould\s+love\b|\blet'?s\s+do\s+it\b|\bcount\s+me\s+in\b",
    r"\bme\s+interesa\b|\bnos\s+interesa\b|\binteresante\b|\bsuena\s+(?:bien|interesante|genial)\b",
    r"\b(?:learn|hear|know|see|read)(?:ing)?\s+more\b|\bopen\s+to\s+(?:it|this|the\s+idea|hearing|learning)\b",
    r"^\W*go\s+on\b|\bwhat'?s\s+the\s+(?:gist|idea|pitch)\b|\b(?:saber|conocer|ver)\s+mas\b",
    r"\bcuentame\s+mas\b|\bcuenteme\s+mas\b|\bmas\s+informacion\b|\benviame\b|\benvieme\b|\bmandame\b|\bmandeme\b",
    r"\b(?:si|claro|por\s+supuesto|genial|me\s+encantaria)\b",
)

INFO_REQUEST: Cues = (
    r"\bwhat\s+do\s+you\s+need\s+from\s+(?:me|us)\b|\bwalk\s+(?:me|us)\s+through\b",
    r"\b(?:envi|mand|pas)\w*\s+(?:un\s+)?resumen\b",
    r"\bwhat\s+would\s+(?:this|it|that)\s+look\s+like\b|\b(?:send|share)\s+(?:me\s+|us\s+)?(?:a\s+)?(?:proposal|quote)\b",
    r"\b(?:manda|envia|pasa)\w*\s+(?:una\s+)?(?:propuesta|cotizacion)\b",
    r"\b(?:share|send|tell)\s+(?:me\s+|us\s+)?more\b",
    r"\bwhat'?s\s+the\s+(?:gist|idea|pitch)\b",
    r"\bwhat\s+(?:else\s+|more\s+)?(?:can|could)\s+you\s+(?:share|send|show)\b",
    r"\b(?:send|share|forward|email)\b.{0,30}\b(?:info|information|details|deck|one-?pager|case\s+stud\w*|brochure|"
    r"material|overview|slides)\b",
    r"\b(?:envi|mand|pas|compart)\w*\b.{0,30}\b(?:informacion|info|detalles|presentacion|dossier|material|casos)\b",
)
"""Asking to be sent more is interest, even phrased as a question ("can you send a one-pager?")."""

STOP_VERBS = _words(
    "stop stopp quit cease remove delete erase unsub unsubscribe drop exclude "
    "borra borrad borren borrenme borrame borrar quita quitad quiten quitenme quitame quitar elimina eliminad "
    "eliminen eliminenme eliminame eliminar saca sacad saquen saquenme sacame sacar"
)
STOP_OBJECTS = _words(
    "me my us our emailing emails email e-mail mailing list lists messages messaging texts texting writing "
    "correo correos mi mis nos nuestro lista listas mensajes base datos escribirme contactarme"
)


def asks_to_stop(folded: str) -> str | None:
    """A stop verb with what to stop a few words after it ("Stop. Emailing. Me.", "borrad mi correo de la lista")."""
    tokens = re.findall(r"[a-z'-]+", folded)
    for i, token in enumerate(tokens):
        if token in STOP_VERBS and (i == 0 or tokens[i - 1] not in ("don't", "dont", "not", "never", "no")):
            window = tokens[i + 1 : i + 5]
            if any(w in STOP_OBJECTS for w in window):
                return " ".join(tokens[i : i + 5])
    return None


STEMS: dict[Intent, dict[str, float]] = {
    Intent.UNSUBSCRIBE: {"remove": 2, "unsub": 2, "baja": 2, "spam": 1, "borr": 1, "elimin": 1, "dejad": 1, "dejen": 1},
    Intent.AUTO_REPLY: {
        "automat": 2,
        "autom": 1,
        "generad": 1,
        "reference": 1,
        "referencia": 1,
        "reopen": 1,
        "closed": 1,
        "cerrado": 1,
        "received": 0.5,
        "recibimos": 1,
        "recibido": 0.5,
        "brevedad": 1,
        "soon": 0.5,
        "ticket": 1,
    },
    Intent.WRONG_PERSON: {
        "moved": 1,
        "different": 0.5,
        "cambie": 1,
        "empresa": 0.5,
        "company": 0.5,
        "cosa": 0.5,
        "mia": 0.5,
        "looking": 0.3,
        "person": 0.7,
        "persona": 0.7,
        "retir": 1,
    },
    Intent.INTERESTED: {
        "info": 1,
        "deck": 1,
        "look": 0.5,
        "fit": 1,
        "intrigu": 1,
        "cuent": 1,
        "venir": 0.5,
        "bien": 0.3,
        "interes": 1,
        "more": 0.5,
        "pls": 0.3,
        "def": 0.5,
        "shoot": 0.5,
        "informacion": 1,
        "pasame": 1,
    },
    Intent.MEETING_REQUEST: {
        "call": 1,
        "llam": 1,
        "ring": 1,
        "tmrw": 1,
        "tomorrow": 0.5,
        "manana": 0.5,
        "meet": 1,
        "reun": 1,
        "zoom": 1,
        "teams": 0.5,
        "talk": 0.5,
        "hablamos": 1,
    },
    Intent.QUESTION: {"pricing": 1, "price": 1, "precio": 1, "cost": 1, "cuesta": 1, "whats": 1, "how": 0.5},
    Intent.OBJECTION: {
        "experience": 0.5,
        "bad": 0.5,
        "flagged": 1,
        "blacklist": 1,
        "proof": 1,
        "prueba": 0.5,
        "permite": 1,
        "allowed": 1,
        "allow": 0.7,
        "risk": 1,
        "riesgo": 1,
        "expensive": 1,
        "caro": 1,
        "budget": 1,
        "presupuesto": 1,
    },
    Intent.NOT_INTERESTED: {"otro": 0.5, "another": 0.5, "no": 0.5, "pass": 1, "nope": 1, "nah": 1},
}
"""Word roots that lean towards an intent: the last resort when no rule read the reply (weights, not rules)."""


def lean(folded: str) -> tuple[Intent, float, str] | None:
    """The intent whose roots weigh most in ``folded`` (at least 1), or ``None``."""
    tokens = re.findall(r"[a-z]+", folded)
    best: tuple[float, Intent, str] | None = None
    for intent, stems in STEMS.items():
        weight, words = 0.0, []
        for token in tokens:
            root = next((stem for stem in stems if token.startswith(stem) and (len(stem) > 3 or token == stem)), None)
            if root is not None:
                weight += stems[root]
                words.append(token)
        if weight >= 1 and (best is None or weight > best[0]):
            best = (weight, intent, " ".join(words))
    return None if best is None else (best[1], 0.45, best[2][:200])


_RULES: Sequence[tuple[Intent, Cues, float]] = (
    (Intent.UNSUBSCRIBE, UNSUBSCRIBE, 0.95),
    (Intent.OUT_OF_OFFICE, OUT_OF_OFFICE, 0.9),
    (Intent.AUTO_REPLY, AUTO_REPLY, 0.85),
    (Intent.WRONG_PERSON, WRONG_PERSON, 0.8),
    (Intent.NOT_NOW, NOT_NOW, 0.75),
    (Intent.NOT_INTERESTED, NOT_INTERESTED, 0.8),
    (Intent.OBJECTION, OBJECTION, 0.7),
    (Intent.MEETING_REQUEST, MEETING, 0.7),
    (Intent.QUESTION, QUESTION, 0.6),
    (Intent.INTERESTED, INTERESTED, 0.6),
)
_COMPILED = tuple((intent, tuple(re.compile(c) for c in cues), conf) for intent, cues, conf in _RULES)
_REFERRAL = tuple(re.compile(c) for c in REFERRAL)
_INFO_REQUEST = tuple(re.compile(c) for c in INFO_REQUEST)

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_NAME_WORD = r"[A-ZÁÉÍÓÚÑÜ][a-záéíóúñüA-Z'\-]+"
_NAME = re.compile(rf"{_NAME_WORD}(?:\s+(?:de\s+la\s+|de\s+|del\s+|van\s+|von\s+)?{_NAME_WORD}){{0,2}}")
_NOT_NAMES = _words(
    "I We Our My The He She They Her His Hi Hello Hey Thanks Thank Please Dear Also Regards Best Cheers "
    "Hola Gracias Saludos Por Nuestro Nuestra Mi El La Ella Su Un Una Si Sí Yes No Monday Tuesday "
    "Wednesday Thursday Friday CTO CEO CFO VP Head Director Manager Ops Sales Marketing IT HR "
    "Procurement Purchasing Email E-mail Correo Contact Contacte Talk Reach Speak Hable Escriba "
    "Escríbale Cc Copying Looping Q1 Q2 Q3 Q4 January February March April May June July August "
    "September October November December Enero Febrero Marzo Abril Mayo Junio Julio Agosto Septiembre "
    "Octubre Noviembre Diciembre Urgent Urgente Urgencias Urgencies Emergencies For Para Meanwhile "
    "Mientras Otherwise Or In En At Via Alternatively Matters Asuntos Support Soporte Questions "
    "Preguntas Inquiries Consultas"
)
_INTRO = re.compile(
    r"\b(?:reach\s+out\s+to|talk\s+to|speak\s+(?:to|with)|contact|get\s+in\s+touch\s+with|e-?mail|ping|try|"
    r"pass(?:ing)?\s+(?:this|it)\s+(?:on\s+|along\s+)?to|looping\s+in|loop\s+in|cc'?ing|cc'?d|cc'?ed|adding|added|copying|forwarding\s+(?:this\s+)?to|is|would\s+be|hable\s+con|habla\s+con|"
    r"contacte\s+a|contacta\s+a|contactar\s+a|escriba\s+a|escribale\s+a|escríbale\s+a|escribe\s+a|es|seria|"
    r"pregunte\s+a|you\s+want|you\s+need|ask|direct\s+this\s+to|(?:el|la)\s+responsable\s+es|"
    r"(?:escribele|escribale|escribirle)\s+a|(?:pongo\s+)?en\s+copia\s+a|copio\s+a|pregunta\s+a|colleague|colega|compañer[oa]|manager|head\s+of\s+\w+|cto|ceo|cfo|vp\s+of\s+\w+|"
    r"director[a]?\s+de\s+\w+|responsable\s+de\s+\w+)[,:]?\s+",
    re.IGNORECASE,
)


def language(text: str) -> str:
    """``"es"`` or ``"en"``: which of the two the reply's common words belong to (English on a tie)."""
    words = re.findall(r"[a-z]+", fold(text))
    es = sum(w in _SPANISH for w in words) + 2 * len(re.findall(r"[ñ¿¡áéíóú]", text.lower()))
    en = sum(w in _ENGLISH for w in words)
    return "es" if es > en else "en"


def referral(text: str) -> Referral | None:
    """The person the reply points to: an address and the name written next to it, or a name after "talk to"."""
    introduced = next(
        (name for m in _INTRO.finditer(text) if (name := _first_name(text[m.end() : m.end() + 60], only_start=True))),
        None,
    )
    first = _EMAIL.search(text)
    if first is None:
        return Referral(name=introduced) if introduced else None
    before = text[max(0, first.start() - 80) : first.start()]
    after = re.sub(r"^[\s(),:-]+", "", text[first.end() : first.end() + 60])
    name = introduced or _last_name(before) or _first_name(after, only_start=True)
    return Referral(name=name, email=first.group(0).rstrip(".").lower())


def _clean_name(raw: str) -> str | None:
    words = [w for w in raw.split() if w not in _NOT_NAMES]
    while words and words[0].lower() in ("de", "del", "van", "von", "la"):
        words.pop(0)
    return " ".join(words) if words else None


_GAP = re.compile(r"[\s<(\[,:\-\u2013\u2014]*(?:(?:at|en|a|on|via)\s*[:<(]?\s*)?")


def _last_name(before: str) -> str | None:
    """The name written right before an address ("Dan Smith <dan@x>", "Ana (ana@x)", "Juan, juan@x")."""
    for m in reversed(list(_NAME.finditer(before))):
        if not _GAP.fullmatch(before[m.end() :]):
            return None
        name = _clean_name(m.group(0))
        if name:
            return name
    return None


def _first_name(after: str, *, only_start: bool) -> str | None:
    m = _NAME.match(after) if only_start else _NAME.search(after)
    return _clean_name(m.group(0)) if m else None


def _pick_date(found: list[Found], folded: str, cue: str) -> date | None:
    if not found:
        return None
    for f in found:
        if re.search(cue, folded[max(0, f.start - 40) : f.start]):
            return f.day
    return found[0].day


_INSTRUCTIONS = re.compile(
    r"[^.!?\n]*\b(?:ignore|disregard|forget)\b[^.!?\n]{0,40}\b(?:instructions?|prompts?|rules)\b[^.!?\n]*[.!?]?"
    r"|[^.!?\n]*\b(?:classify|label|mark|tag|categori[sz]e)\s+(?:this|it|me|the\s+reply|every\s+\w+|all\s+\w+)?\s*as\b"
    r"[^.!?\n]*[.!?]?"
    r"|[^.!?\n]*\b(?:ignora|olvida|descarta|ignore[ns]?)\b[^.!?\n]{0,40}\binstrucciones\b[^.!?\n]*[.!?]?"
    r"|[^.!?\n]*\b(?:clasifica|etiqueta|marca)(?:r|lo|la)?\s+(?:esto|este\s+\w+|todo)?\s*como\b[^.!?\n]*[.!?]?"
    r"|[^.!?\n]*(?:\b(?:system|assistant|sistema|asistente)\s*:|\bnew\s+instructions\b|\bintent\s*=|</?reply>)[^.!?\n]*[.!?]?"
    r"|[^.!?\n]*\b(?:as\s+(?:an?\s+)?instructions?|(?:respond|answer|reply|output)\s+with\s+(?:the\s+)?"
    r"(?:intent|label|category))\b[^.!?\n]*[.!?]?"
    r"|[^.!?\n]*\b(?:system\s+prompt|you\s+are\s+(?:an?\s+)?(?:ai|assistant|language\s+model|classifier))\b[^.!?\n]*[.!?]?",
    re.IGNORECASE,
)
"""Sentences addressed to a classifier rather than to the sender: read as nothing, never obeyed."""

_IDENTITY = re.compile(
    r"^\W*(?:sorry,?\s+|perdon,?\s+|disculpa,?\s+)?(?:who(?:'s|\s+is|\s+are)\s+(?:this|you|the\s+sender)|who\s+gave\s+you|"
    r"how\s+did\s+you\s+get\s+my|quien\s+(?:es|eres|sois|son)(?:\s+usted)?|de\s+donde\s+(?:sacaste|saco|sacaron))\b[^.!?]*\??\W*$"
)
"""A reply that only asks who wrote: not a question about the offer."""

_BARE_NO = re.compile(
    r"^\W*(?:lol\s+|haha\s+|jaja\s+)?(?:no|nope|nah)(?:\s*[,.!]|\s*$|\s+(?:thanks|thank|thx|gracias|way)\b)"
)
"""A reply that opens with "no" and says nothing the other rules read: a refusal, weakly."""

_NEGATED_STOP = re.compile(
    r"\b(?:don'?t|do\s+not|never|please\s+don'?t|no\s+dejen?|no\s+deje[ns]?)\s+(?:de\s+)?"
    r"(?:stop|stopping|quit|remove|unsubscribe|escribir|enviar|mandar)\w*"
)
"""'Please don't stop emailing me' asks for more, not less."""

_RETURN_CUE = (
    r"(?:back|return\w*|until|till|through|hasta|vuelt|volver\w*|regres\w*|reincorpor\w*|from|desde)\W*(?:\w+\W+){0,3}$"
)
_DEFER_CUE = r"(?:in|after|until|around|from|on|en|despues|para|partir|hacia|hasta|el|la)\W*(?:\w+\W+){0,2}$"


def classify_local(text: str, *, received_at: datetime, fallback_reason: str | None = None) -> ReplyClassification:
    """Classify ``text`` (an email body or an SMS) without the network; dates resolve against ``received_at``."""
    written = _INSTRUCTIONS.sub(" ", new_text(text or ""))
    folded = fold(written)
    lang = language(written)
    today = received_at.date()

    def result(intent: Intent, confidence: float, matched: str | None, **fields: object) -> ReplyClassification:
        return ReplyClassification(
            intent=intent,
            confidence=confidence,
            source="local",
            fields=ReplyFields(language=lang, **fields),
            matched=matched[:200] if matched else None,
            fallback_reason=fallback_reason,
        )

    if not folded.strip():
        return result(Intent.OTHER, 0.3, None)
    if optout.classify(written).is_opt_out:
        return result(Intent.UNSUBSCRIBE, 0.99, optout.classify(written).matched)
    hits: dict[Intent, tuple[float, str]] = {}
    unnegated = _NEGATED_STOP.sub(" ", folded)
    for intent, patterns, confidence in _COMPILED:
        for pattern in patterns:
            m = pattern.search(unnegated if intent is Intent.UNSUBSCRIBE else folded)
            if m:
                hits[intent] = (confidence, m.group(0))
                break
    if _IDENTITY.search(folded) and not any(
        i in hits for i in (Intent.UNSUBSCRIBE, Intent.OUT_OF_OFFICE, Intent.AUTO_REPLY)
    ):
        return result(Intent.OTHER, 0.5, "who is this")
    dates = find_dates(folded, today, day_first=lang == "es")
    pointed = referral(written)
    # An address written in the reply itself (signatures are gone) points to someone else.
    refers = any(p.search(folded) for p in _REFERRAL) or bool(pointed and pointed.email)

    if Intent.UNSUBSCRIBE in hits:
        return result(Intent.UNSUBSCRIBE, *hits[Intent.UNSUBSCRIBE])
    stop = asks_to_stop(unnegated)
    if stop is not None and Intent.OUT_OF_OFFICE not in hits and Intent.AUTO_REPLY not in hits:
        return result(Intent.UNSUBSCRIBE, 0.85, stop)
    if Intent.OUT_OF_OFFICE in hits:
        backup = pointed if pointed is not None and pointed.email else None
        return result(*_with(Intent.OUT_OF_OFFICE, hits), not_before=_return_date(dates, folded), referral=backup)
    if Intent.AUTO_REPLY in hits:
        return result(*_with(Intent.AUTO_REPLY, hits))
    if refers and pointed is not None:
        return result(Intent.REFERRAL, 0.85 if pointed.email else 0.7, "referral", referral=pointed)
    if Intent.WRONG_PERSON in hits:
        return result(*_with(Intent.WRONG_PERSON, hits))
    if Intent.NOT_NOW in hits or (dates and Intent.NOT_INTERESTED not in hits and _defers(folded)):
        matched = hits.get(Intent.NOT_NOW, (0.65, "deferral"))
        return result(Intent.NOT_NOW, matched[0], matched[1], not_before=_pick_date(dates, folded, _DEFER_CUE))
    for intent in (Intent.NOT_INTERESTED, Intent.OBJECTION, Intent.MEETING_REQUEST):
        if intent in hits:
            return result(*_with(intent, hits))
    asked = next((m.group(0) for p in _INFO_REQUEST if (m := p.search(folded))), None)
    if asked is not None:
        return result(Intent.INTERESTED, 0.7, asked)
    for intent in (Intent.QUESTION, Intent.INTERESTED):
        if intent in hits:
            return result(*_with(intent, hits))
    if _BARE_NO.search(folded) or re.search(r"(?:[,.!;]|\bbut|\bpero)\s*no\W*$", folded):
        return result(Intent.NOT_INTERESTED, 0.6, "no")
    leaning = lean(folded)
    if leaning is not None:
        return result(*leaning)
    return result(Intent.OTHER, 0.4, None)


def _with(intent: Intent, hits: dict[Intent, tuple[float, str]]) -> tuple[Intent, float, str]:
    confidence, matched = hits[intent]
    return intent, confidence, matched


def _return_date(dates: list[Found], folded: str) -> date | None:
    """The day after a "back on" / "hasta" cue, else the latest day named (an absence's end)."""
    after_cue = [f.day for f in dates if re.search(_RETURN_CUE, folded[max(0, f.start - 40) : f.start])]
    return after_cue[-1] if after_cue else max((f.day for f in dates), default=None)


def _defers(folded: str) -> bool:
    return bool(
        re.search(r"\b(?:again|later|back|reach\s+out|follow\s+up|de\s+nuevo|otra\s+vez|retom|vuelv)\w*", folded)
    )


__all__ = ["LOCAL_MODEL", "RULES_VERSION", "classify_local", "language", "referral"]
