package xmpp

import (
	"encoding/xml"
	"strconv"

	"mediaslot/upload"
)

// XEP-0030 service discovery of the upload service. mellium's disco package
// writes the XEP-0128 form as type "submit"; XEP-0363 clients (Conversations)
// match the form by FORM_TYPE and expect type "result", so it is built here.

type discoIdentity struct {
	XMLName  xml.Name `xml:"identity"`
	Category string   `xml:"category,attr"`
	Type     string   `xml:"type,attr"`
	Name     string   `xml:"name,attr"`
}

type discoFeature struct {
	XMLName xml.Name `xml:"feature"`
	Var     string   `xml:"var,attr"`
}

type formField struct {
	XMLName xml.Name `xml:"field"`
	Var     string   `xml:"var,attr"`
	Type    string   `xml:"type,attr,omitempty"`
	Value   string   `xml:"value"`
}

type form struct {
	XMLName xml.Name `xml:"jabber:x:data x"`
	Type    string   `xml:"type,attr"`
	Fields  []formField
}

type discoInfo struct {
	XMLName    xml.Name `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string   `xml:"node,attr,omitempty"`
	Identities []discoIdentity
	Features   []discoFeature
	Forms      []form
}

type discoItems struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/disco#items query"`
}

// features lists what the component answers, in XEP-0030 order of interest.
var features = []string{nsDiscoInfo, nsDiscoItems, nsPing, nsVersion, nsUpload, nsUploadLegacy}

// uploadInfo is the disco#info answer: identity store/file, the features
// (with XEP-0033 addressing when the relay runs) and one max-file-size form
// per upload namespace (clients read the form whose FORM_TYPE is the
// namespace they speak).
func uploadInfo(maxSize int64, relay bool) discoInfo {
	info := discoInfo{Identities: []discoIdentity{{Category: "store", Type: "file", Name: "HTTP File Upload"}}}
	for _, f := range features {
		info.Features = append(info.Features, discoFeature{Var: f})
	}
	for _, p := range upload.Purposes {
		info.Features = append(info.Features, discoFeature{Var: nsPurpose + "#" + string(p)})
	}
	if relay {
		info.Features = append(info.Features, discoFeature{Var: nsAddress})
	}
	for _, ns := range []string{nsUpload, nsUploadLegacy} {
		info.Forms = append(info.Forms, form{Type: "result", Fields: []formField{
			{Var: "FORM_TYPE", Type: "hidden", Value: ns},
			{Var: "max-file-size", Value: strconv.FormatInt(maxSize, 10)},
		}})
	}
	return info
}
