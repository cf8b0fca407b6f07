import { SessionEntity } from "../modules/accounts/session.entity";
import { UserEntity } from "../modules/accounts/user.entity";

/** Every TypeORM entity; modules add theirs here. */
export const entities = [UserEntity, SessionEntity];
