package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
)

// XEP-0030 service discovery, and finding the upload service the way clients
// do (Dino, Conversations, Gajim): the user's server first, then each of its
// items.

type discoInfoXML struct {
	Identities []Identity `xml:"identity"`
	Features   []struct {
		Var string `xml:"var,attr"`
	} `xml:"feature"`
	Forms []formXML `xml:"jabber:x:data x"`
}

type formXML struct {
	Type   string `xml:"type,attr"`
	Fields []struct {
		Var    string   `xml:"var,attr"`
		Type   string   `xml:"type,attr"`
		Values []string `xml:"value"`
	} `xml:"field"`
}

type discoItemsXML struct {
	Items []struct {
		JID  string `xml:"jid,attr"`
		Node string `xml:"node,attr"`
	} `xml:"item"`
}

// Identity is a XEP-0030 identity.
type Identity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Name     string `xml:"name,attr"`
}

// Form is a XEP-0128 extended-information form.
type Form struct {
	Type   string              // "result" per XEP-0128
	Fields map[string][]string // var -> values
}

// FormType is the value of the hidden FORM_TYPE field.
func (f Form) FormType() string {
	if v := f.Fields["FORM_TYPE"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Info is a disco#info answer.
type Info struct {
	Identities []Identity
	Features   []string
	Forms      []Form
}

// HasFeature reports whether the entity advertises the feature var.
func (i Info) HasFeature(v string) bool {
	for _, f := range i.Features {
		if f == v {
			return true
		}
	}
	return false
}

// HasIdentity reports whether the entity has an identity category/typ.
func (i Info) HasIdentity(category, typ string) bool {
	for _, id := range i.Identities {
		if id.Category == category && id.Type == typ {
			return true
		}
	}
	return false
}

// Form returns the form whose FORM_TYPE is formType. Conversations matches
// on FORM_TYPE, so a max-file-size in any other form does not count.
func (i Info) Form(formType string) (Form, bool) {
	for _, f := range i.Forms {
		if f.FormType() == formType {
			return f, true
		}
	}
	return Form{}, false
}

// MaxFileSize is the XEP-0363 max-file-size in bytes, or 0 if not advertised.
func (i Info) MaxFileSize() int64 {
	f, ok := i.Form(NSUpload)
	if !ok || len(f.Fields["max-file-size"]) == 0 {
		return 0
	}
	return parseSize(f.Fields["max-file-size"][0])
}

// Info asks to for its disco#info.
func (c *Client) Info(ctx context.Context, to jid.JID) (Info, error) {
	in, err := c.iq(ctx, to, "get", []byte(`<query xmlns='`+nsDiscoInfo+`'/>`))
	if err != nil {
		return Info{}, err
	}
	if in.DiscoInfo == nil {
		return Info{}, fmt.Errorf("%s answered disco#info without a query", to)
	}
	info := Info{Identities: in.DiscoInfo.Identities}
	for _, f := range in.DiscoInfo.Features {
		info.Features = append(info.Features, f.Var)
	}
	for _, fx := range in.DiscoInfo.Forms {
		f := Form{Type: fx.Type, Fields: make(map[string][]string)}
		for _, fl := range fx.Fields {
			f.Fields[fl.Var] = append(f.Fields[fl.Var], fl.Values...)
		}
		info.Forms = append(info.Forms, f)
	}
	return info, nil
}

// Items asks to for its disco#items and returns the item JIDs (items with a
// node are not entities of their own and are left out).
func (c *Client) Items(ctx context.Context, to jid.JID) ([]jid.JID, error) {
	in, err := c.iq(ctx, to, "get", []byte(`<query xmlns='`+nsDiscoItems+`'/>`))
	if err != nil {
		return nil, err
	}
	if in.DiscoItems == nil {
		return nil, fmt.Errorf("%s answered disco#items without a query", to)
	}
	var items []jid.JID
	for _, it := range in.DiscoItems.Items {
		if it.Node != "" {
			continue
		}
		j, err := jid.Parse(it.JID)
		if err != nil {
			c.log.Debug("skipping disco item with a bad JID", "jid", it.JID, "err", err)
			continue
		}
		items = append(items, j)
	}
	return items, nil
}

// Service is an upload service.
type Service struct {
	JID  jid.JID
	Info Info
}

// MaxFileSize is the service's advertised limit in bytes, 0 if none.
func (s Service) MaxFileSize() int64 { return s.Info.MaxFileSize() }

// Service checks that j is an upload service and returns it.
func (c *Client) Service(ctx context.Context, j jid.JID) (Service, error) {
	info, err := c.Info(ctx, j)
	if err != nil {
		if errors.Is(err, ErrTimeout) {
			return Service{}, err
		}
		return Service{}, fmt.Errorf("%w: disco#info of %s: %v", ErrNoService, j, err)
	}
	if !info.HasFeature(NSUpload) {
		return Service{}, fmt.Errorf("%w: %s does not advertise %s", ErrNoService, j, NSUpload)
	}
	return Service{JID: j, Info: info}, nil
}

// DiscoverUpload finds the upload service of the user's server: the server
// itself if it advertises XEP-0363, else the first of its disco#items that
// does, preferring JIDs that start with "upload" as Dino does (servers list
// items in no meaningful order). Items are queried concurrently.
func (c *Client) DiscoverUpload(ctx context.Context) (Service, error) {
	server := c.jid.Domain()
	if s, err := c.Service(ctx, server); err == nil {
		return s, nil
	} else if errors.Is(err, ErrTimeout) {
		return Service{}, err
	}
	items, err := c.Items(ctx, server)
	if err != nil {
		return Service{}, fmt.Errorf("%w: disco#items of %s: %v", ErrNoService, server, err)
	}
	sort.SliceStable(items, func(i, j int) bool {
		return strings.HasPrefix(items[i].String(), "upload") && !strings.HasPrefix(items[j].String(), "upload")
	})
	found := make([]*Service, len(items))
	var wg sync.WaitGroup
	for i, item := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, err := c.Service(ctx, item); err == nil {
				found[i] = &s
			}
		}()
	}
	wg.Wait()
	for _, s := range found {
		if s != nil {
			return *s, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return Service{}, timeoutError(ctx, err)
	}
	return Service{}, fmt.Errorf("%w on %s or its %d disco#items", ErrNoService, server, len(items))
}
