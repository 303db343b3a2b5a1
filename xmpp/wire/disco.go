package wire

import "encoding/xml"

// XEP-0030 service discovery. mellium's disco package writes the XEP-0128
// form as type "submit"; XEP-0363 clients (Conversations) match the form by
// FORM_TYPE and expect type "result", so the answer is built here: the
// link starts it with its own features, and each protocol it serves adds
// its identity, features and forms (see xmpp.Handler).

// Identity is a disco#info identity.
type Identity struct {
	XMLName  xml.Name `xml:"identity"`
	Category string   `xml:"category,attr"`
	Type     string   `xml:"type,attr"`
	Name     string   `xml:"name,attr"`
}

// Feature is a disco#info feature.
type Feature struct {
	XMLName xml.Name `xml:"feature"`
	Var     string   `xml:"var,attr"`
}

// FormField is a field of an XEP-0128 form.
type FormField struct {
	XMLName xml.Name `xml:"field"`
	Var     string   `xml:"var,attr"`
	Type    string   `xml:"type,attr,omitempty"`
	Value   string   `xml:"value"`
}

// Form is an XEP-0128 extended information form, of type result.
type Form struct {
	XMLName xml.Name `xml:"jabber:x:data x"`
	Type    string   `xml:"type,attr"`
	Fields  []FormField
}

// Info is a disco#info answer.
type Info struct {
	XMLName    xml.Name `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string   `xml:"node,attr,omitempty"`
	Identities []Identity
	Features   []Feature
	Forms      []Form
}

// AddFeatures appends features to the answer, in order.
func (i *Info) AddFeatures(vars ...string) {
	for _, v := range vars {
		i.Features = append(i.Features, Feature{Var: v})
	}
}

// Items is an empty disco#items answer.
type Items struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/disco#items query"`
}
