package lab

import (
	"fmt"
	"path/filepath"

	"github.com/piimage/piimage/cmd/piimage/rollout"
)

// writeCards makes every node's card folder from the image of its role
// and records it in the plan.
func (s *State) writeCards(c *Cards) error {
	byRole := map[string]*rollout.Image{}
	for _, p := range c.Images {
		img, err := rollout.OpenImage(p)
		if err != nil {
			return err
		}
		defer img.File.Close()
		if prev, ok := byRole[img.Role]; ok {
			return fmt.Errorf("two images for role %s: %s and %s", img.Role, prev.Path, p)
		}
		byRole[img.Role] = img
	}
	for i := range s.Plan.Nodes {
		pn := &s.Plan.Nodes[i]
		img, ok := byRole[pn.Role]
		if !ok {
			return fmt.Errorf("no image for %s's role %s", pn.Host, pn.Role)
		}
		card := filepath.Join(pn.Dir, "card")
		if err := img.Img.WriteCard(card, c.PubPEM, c.Admin.NodeFiles()); err != nil {
			return fmt.Errorf("%s's card folder: %w", pn.Host, err)
		}
		pn.Card = card
	}
	return s.Save()
}
