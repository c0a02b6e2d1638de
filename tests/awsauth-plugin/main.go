// Command awsauth serves the AWS auth method of HashiCorp Vault as an
// external plugin for the OpenBao dev server that the test stack runs.
//
// NOTE: the plan was OpenBao's own plugin (module
// github.com/openbao/openbao-plugins, package auth/aws/cmd), but the Go
// module proxy reachable from this project's machines serves no version of
// that module. Vault's AWS auth backend is the code OpenBao's plugin was
// forked from and speaks the same plugin protocol, so the tests run it
// instead, pinned by go.mod and go.sum.
package main

import (
	"context"
	"log"
	"os"

	"github.com/hashicorp/vault/api"
	awsauth "github.com/hashicorp/vault/builtin/credential/aws"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
	"github.com/hashicorp/vault/sdk/rotation"
)

// openBaoSystemView hides one difference between the two servers: Vault's
// backend deregisters a credential-rotation job on every config/client
// write, and OpenBao has no rotation manager, so its SystemView rejects the
// call as unimplemented. With no rotation configured there is nothing to
// deregister, so the call succeeds without doing anything.
type openBaoSystemView struct{ logical.SystemView }

func (openBaoSystemView) DeregisterRotationJob(context.Context, *rotation.RotationJobDeregisterRequest) error {
	return nil
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	conf.System = openBaoSystemView{conf.System}
	return awsauth.Factory(ctx, conf)
}

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	}); err != nil {
		log.Fatal(err)
	}
}
