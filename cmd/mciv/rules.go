package main

import (
	"errors"
	"fmt"

	"github.com/mciv/mciv/rules"
	"github.com/spf13/cobra"
)

func rulesCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Work with rule files"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE|DIR...",
		Short: "Check rule files; print every error as file:line:col and exit 1 if any",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			set, err := rules.LoadFiles(args...)
			if err != nil {
				var list rules.Errors
				if errors.As(err, &list) {
					for _, item := range list {
						fmt.Fprintln(e.stdout, item.Error())
					}
				} else {
					fmt.Fprintln(e.stdout, err)
				}
				return exitCode(1)
			}
			fmt.Fprintf(e.stdout, "ok: %d rules in %d groups\n", set.NumRules(), set.NumGroups())
			return nil
		},
	})
	return cmd
}
